package fileindex

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WalkOptions tune Walk.
type WalkOptions struct {
	// Excludes are paths relative to the root whose contents are left out
	// (their directories stay; excluded non-directories are left out).
	Excludes []string
	// OneFS keeps to the root's filesystem (mount points are listed but
	// not entered), like tar --one-file-system.
	OneFS bool
}

// Walk writes a listing of the tree under dir to w. It never follows a
// symlink: every directory is opened relative to its parent's descriptor
// with O_NOFOLLOW, and entries are read with fstatat(AT_SYMLINK_NOFOLLOW),
// so a tree that changes while it is walked cannot lead it outside dir.
func Walk(ctx context.Context, dir string, opts WalkOptions, w io.Writer) error {
	start := time.Now()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("listing %s: %w", dir, err)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.WriteString(Header(start)); err != nil {
		unix.Close(fd)
		return err
	}
	wk := &walker{ctx: ctx, w: bw, dev: uint64(st.Dev), oneFS: opts.OneFS, excl: map[string]bool{}, dir: dir}
	for _, e := range opts.Excludes {
		if e = strings.Trim(path.Clean("/"+e), "/"); e != "" {
			wk.excl[e] = true
		}
	}
	if err := wk.walk(fd, ""); err != nil {
		return err
	}
	return bw.Flush()
}

type walker struct {
	ctx   context.Context
	w     *bufio.Writer
	dev   uint64
	oneFS bool
	excl  map[string]bool
	dir   string
	buf   []byte
	e     Entry
}

// walk lists the directory open as fd (rel is its path) and closes fd.
func (wk *walker) walk(fd int, rel string) error {
	f := os.NewFile(uintptr(fd), path.Join(wk.dir, rel))
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return fmt.Errorf("listing %s: %w", f.Name(), err)
	}
	defer f.Close()
	sort.Strings(names)
	for _, name := range names {
		if err := wk.ctx.Err(); err != nil {
			return err
		}
		p := name
		if rel != "" {
			p = rel + "/" + name
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue // removed while listed
			}
			return fmt.Errorf("listing %s: %w", path.Join(wk.dir, p), err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if wk.excl[p] && !isDir {
			continue
		}
		e := &wk.e
		*e = Entry{
			Type: typeOf(uint32(st.Mode)), Mode: uint32(st.Mode) & 0o7777, UID: st.Uid, GID: st.Gid, Size: st.Size,
			Mtime: Time{st.Mtim.Sec, st.Mtim.Nsec}, Ctime: Time{st.Ctim.Sec, st.Ctim.Nsec},
			Ino: st.Ino, Nlink: uint64(st.Nlink), Path: p,
		}
		if e.Type == 'l' {
			e.Link, err = readlinkat(fd, name)
			if err == unix.ENOENT || err == unix.EINVAL {
				// Removed or replaced while listed: listed with no
				// target (as find's %l does), it counts as changed and
				// the stream takes what is there now.
				e.Link, err = "", nil
			}
			if err != nil {
				return fmt.Errorf("listing %s: %w", path.Join(wk.dir, p), err)
			}
		}
		wk.buf = AppendRecord(wk.buf[:0], e)
		if _, err := wk.w.Write(wk.buf); err != nil {
			return err
		}
		if !isDir || wk.excl[p] || (wk.oneFS && uint64(st.Dev) != wk.dev) {
			continue
		}
		cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
				continue // replaced while listed
			}
			return fmt.Errorf("listing %s: %w", path.Join(wk.dir, p), err)
		}
		if err := wk.walk(cfd, p); err != nil {
			return err
		}
	}
	return nil
}

func typeOf(m uint32) byte {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return 'd'
	case unix.S_IFLNK:
		return 'l'
	case unix.S_IFBLK:
		return 'b'
	case unix.S_IFCHR:
		return 'c'
	case unix.S_IFIFO:
		return 'p'
	case unix.S_IFSOCK:
		return 's'
	}
	return 'f'
}

func readlinkat(dirfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		b := make([]byte, n)
		m, err := unix.Readlinkat(dirfd, name, b)
		if err != nil {
			return "", err
		}
		if m < n {
			return string(b[:m]), nil
		}
	}
}
