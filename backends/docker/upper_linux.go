//go:build linux

package docker

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"
)

// maxUpperDepth bounds the directory nesting walked in an upper
// directory (one open descriptor per level); deeper trees are left to
// the daemon's change list.
const maxUpperDepth = 512

var errUpperRedirect = errors.New("a directory was renamed with overlayfs's redirect_dir")

// changes lists the upper directory as a change list: every entry is a
// change, a whiteout (a character device 0/0) is the deletion of its
// path, and an opaque directory is both a deletion and a change (a
// directory that replaced a deleted one). The contents of the
// directories in skip (relative paths) are not listed.
//
// The upper directory is the bottle's own content: it is walked with
// openat and O_NOFOLLOW from the directory's descriptor, so no symlink
// placed there is ever followed, and only names, types and overlayfs's
// xattrs are read. The walk gives up (and the daemon is asked) on a
// directory renamed with redirect_dir, whose lower contents its upper
// copy does not show, and on nesting deeper than maxUpperDepth.
func (u *upperLayer) changes(ctx context.Context, skip map[string]bool) ([]container.FilesystemChange, error) {
	fd, err := unix.Open(u.dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, noUpper("opening %s: %v", u.dir, err)
	}
	w := &upperWalk{ctx: ctx, u: u, skip: skip}
	if err := w.dir(fd, "", 0); err != nil {
		return nil, err
	}
	return w.out, nil
}

type upperWalk struct {
	ctx  context.Context
	u    *upperLayer
	skip map[string]bool
	out  []container.FilesystemChange
}

func (w *upperWalk) add(rel string, kind container.ChangeType) {
	w.out = append(w.out, container.FilesystemChange{Path: "/" + rel, Kind: kind})
}

// dir lists the directory open as fd (rel below the upper directory)
// and closes fd.
func (w *upperWalk) dir(fd int, rel string, depth int) error {
	f := os.NewFile(uintptr(fd), filepath.Join(w.u.dir, rel))
	defer f.Close()
	if depth > maxUpperDepth {
		return noUpper("directories nested deeper than %d levels at %s", maxUpperDepth, rel)
	}
	if err := w.ctx.Err(); err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	if err != nil {
		return noUpper("listing %s: %v", f.Name(), err)
	}
	for _, e := range ents {
		name := e.Name()
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		switch t := e.Type(); {
		case t&fs.ModeCharDevice != 0:
			var st unix.Stat_t
			if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
				w.add(p, container.ChangeDelete)
				continue
			}
			w.add(p, container.ChangeModify)
		case t.IsDir():
			w.add(p, container.ChangeModify)
			if w.skip[p] {
				continue
			}
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				continue // replaced meanwhile: the stream takes what is there
			}
			if err != nil {
				return noUpper("opening %s: %v", filepath.Join(w.u.dir, p), err)
			}
			if _, err := unix.Fgetxattr(cfd, w.u.xattr+"redirect", nil); err == nil {
				unix.Close(cfd)
				return noUpper("%s: %v", p, errUpperRedirect)
			}
			var v [4]byte
			if n, err := unix.Fgetxattr(cfd, w.u.xattr+"opaque", v[:]); err == nil && n == 1 && v[0] == 'y' {
				w.add(p, container.ChangeDelete)
			}
			if err := w.dir(cfd, p, depth+1); err != nil {
				return err
			}
		default:
			w.add(p, container.ChangeModify)
		}
	}
	return nil
}
