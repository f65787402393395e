package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// Scratch makes each of names ("tmp", "var/tmp": relative to dir) a real
// directory of mode 1777, owned by root unless opts.NoChown, inside dir.
// A symlink or file in its place is replaced; a parent that leads
// outside dir (an absolute or escaping symlink) leaves that name alone
// and is reported through opts.Warn. Nothing outside dir is followed,
// created or changed.
func Scratch(dir string, names []string, opts Options) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	warn := func(format string, args ...any) {
		if opts.Warn != nil {
			opts.Warn(fmt.Sprintf(format, args...))
		}
	}
	for _, n := range names {
		parent, base := path.Dir(n), path.Base(n)
		if parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				warn("not recreating /%s: /%s does not lead to a directory inside the tree (%v)", n, parent, err)
				continue
			}
		}
		pf, err := openDir(root, parent)
		if err != nil {
			warn("not recreating /%s: %v", n, err)
			continue
		}
		err = scratchAt(int(pf.Fd()), base, opts)
		pf.Close()
		if err != nil {
			return fmt.Errorf("recreating /%s: %w", n, err)
		}
	}
	return nil
}

func scratchAt(pfd int, base string, opts Options) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return err
		}
	}
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if !opts.NoChown {
		if err := unix.Fchown(fd, 0, 0); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, 0o1777)
}

// Private sets the mode of dir itself to 0700 (through a descriptor, not
// following a symlink), whatever the umask: a resumed tree holds
// setuid files and may hold device nodes, which no other local user
// should reach.
func Private(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}
