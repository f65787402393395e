package dir

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bot-bottle/bb/fileindex"
	"github.com/bot-bottle/bb/snapshot"
	"golang.org/x/sys/unix"
)

var _ snapshot.Lister = (*Source)(nil)

// List implements snapshot.Lister: the directory is listed on the host
// by fileindex.Walk (no symlink is followed).
func (s *Source) List(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(fileindex.Walk(ctx, s.Dir, fileindex.WalkOptions{Excludes: req.Excludes, OneFS: s.OneFS}, pw))
	}()
	return pr, nil
}

// StreamPaths implements snapshot.Lister: a tar of exactly the given
// entries (no recursion), written by bb itself. Every path is resolved
// one component at a time with openat(O_NOFOLLOW) from the directory, so
// a symlink made between the listing and the stream cannot redirect a
// read outside it; an entry that vanished in between is left out with a
// warning (the next commit deletes it), as GNU tar does.
func (s *Source) StreamPaths(ctx context.Context, req snapshot.StreamRequest, paths []string) (io.ReadCloser, error) {
	root, err := unix.Open(s.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", s.Dir, err)
	}
	pr, pw := io.Pipe()
	ps := &pathStream{PipeReader: pr}
	go func() {
		defer unix.Close(root)
		w := &pathWriter{root: root, dir: s.Dir, tw: tar.NewWriter(pw), links: map[[2]uint64]string{}, parentFD: -1}
		err := w.write(ctx, paths)
		if w.parentFD >= 0 {
			unix.Close(w.parentFD)
		}
		ps.warnings = w.warnings
		pw.CloseWithError(err)
	}()
	return ps, nil
}

type pathStream struct {
	*io.PipeReader
	warnings []string
}

// Warnings implements snapshot.Warner. It is complete once the stream
// reached its end.
func (p *pathStream) Warnings() []string { return p.warnings }

type pathWriter struct {
	root     int
	dir      string
	tw       *tar.Writer
	links    map[[2]uint64]string
	parent   string
	parentFD int
	warnings []string
	buf      []byte
}

func (w *pathWriter) warn(format string, args ...any) {
	if len(w.warnings) < 100 {
		w.warnings = append(w.warnings, fmt.Sprintf(format, args...))
	}
}

func (w *pathWriter) write(ctx context.Context, paths []string) error {
	w.buf = make([]byte, 256<<10)
	for i, p := range paths {
		if i%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if err := w.entry(p); err != nil {
			return err
		}
	}
	return w.tw.Close()
}

// openParent returns a descriptor of p's parent directory, opened without
// following any symlink.
func (w *pathWriter) openParent(dir string) (int, error) {
	if dir == w.parent && w.parentFD >= 0 {
		return w.parentFD, nil
	}
	if w.parentFD >= 0 {
		unix.Close(w.parentFD)
		w.parentFD = -1
	}
	fd, err := unix.Dup(w.root)
	if err != nil {
		return -1, err
	}
	if dir != "." {
		for _, c := range strings.Split(dir, "/") {
			nfd, err := unix.Openat(fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			unix.Close(fd)
			if err != nil {
				return -1, err
			}
			fd = nfd
		}
	}
	w.parent, w.parentFD = dir, fd
	return fd, nil
}

func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP)
}

func (w *pathWriter) entry(p string) error {
	p = strings.Trim(path.Clean("/"+p), "/")
	if p == "" {
		return nil
	}
	full := path.Join(w.dir, p)
	pfd, err := w.openParent(path.Dir(p))
	if err != nil {
		if gone(err) {
			w.warn("%s: vanished while the snapshot was taken", full)
			return nil
		}
		return fmt.Errorf("opening the directory of %s: %w", full, err)
	}
	hdr, fd, err := w.header(pfd, p, full)
	if err != nil || hdr == nil {
		return err
	}
	return w.emit(hdr, fd, full)
}

// header stats p (base name in the directory pfd, never followed) and
// returns its tar header and, for a regular file or a directory, a
// descriptor of it (-1 otherwise; emit closes it). A nil header
// leaves the entry out: it vanished or is a socket.
func (w *pathWriter) header(pfd int, p, full string) (*tar.Header, int, error) {
	name := path.Base(p)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if gone(err) {
			w.warn("%s: vanished while the snapshot was taken", full)
			return nil, -1, nil
		}
		return nil, -1, fmt.Errorf("stat %s: %w", full, err)
	}
	hdr := &tar.Header{
		Name: p, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return w.regular(pfd, name, p, full, &st, hdr)
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, p+"/"
		fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if !gone(err) {
				return nil, -1, fmt.Errorf("opening %s: %w", full, err)
			}
			fd = -1 // vanished: the entry without its xattrs
		}
		return hdr, fd, nil
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		var err error
		if hdr.Linkname, err = readlinkat(pfd, name); err != nil {
			if gone(err) {
				return nil, -1, nil
			}
			return nil, -1, fmt.Errorf("reading symlink %s: %w", full, err)
		}
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(uint64(st.Rdev))), int64(unix.Minor(uint64(st.Rdev)))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil, -1, nil // sockets: tar skips them too
	}
	return hdr, -1, nil
}

// regular completes the header of a regular file: a hard link to the
// first path of its inode already written, or the file, opened and
// checked to be the one stat saw.
func (w *pathWriter) regular(pfd int, name, p, full string, st *unix.Stat_t, hdr *tar.Header) (*tar.Header, int, error) {
	key := [2]uint64{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 {
		if first, ok := w.links[key]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return hdr, -1, nil
		}
	}
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		if gone(err) {
			w.warn("%s: vanished while the snapshot was taken", full)
			return nil, -1, nil
		}
		return nil, -1, fmt.Errorf("opening %s: %w", full, err)
	}
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		unix.Close(fd)
		return nil, -1, fmt.Errorf("stat %s: %w", full, err)
	}
	if fst.Ino != st.Ino || fst.Dev != st.Dev || fst.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		w.warn("%s: replaced while the snapshot was taken; left out", full)
		return nil, -1, nil
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, fst.Size
	if st.Nlink > 1 {
		w.links[key] = p
	}
	return hdr, fd, nil
}

// emit writes the entry: its xattrs (read through fd, when open), its
// header and a regular file's content, padded if the file shrank. It
// closes fd.
func (w *pathWriter) emit(hdr *tar.Header, fd int, full string) error {
	var f *os.File
	if fd >= 0 {
		f = os.NewFile(uintptr(fd), full)
		defer f.Close()
		if err := xattrs(fd, hdr); err != nil {
			return fmt.Errorf("reading xattrs of %s: %w", full, err)
		}
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing tar entry %s: %w", hdr.Name, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	n, err := io.CopyBuffer(w.tw, io.LimitReader(f, hdr.Size), w.buf)
	if err != nil {
		return fmt.Errorf("reading %s: %w", full, err)
	}
	if n < hdr.Size { // the file shrank: pad, as GNU tar does
		w.warn("%s: file shrank by %d bytes while it was read; padded with zeros", full, hdr.Size-n)
		if _, err := io.CopyN(w.tw, zeros{}, hdr.Size-n); err != nil {
			return err
		}
	}
	return nil
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// xattrs adds the extended attributes of the open file fd to hdr as
// SCHILY.xattr records, as GNU tar --xattrs does.
func xattrs(fd int, hdr *tar.Header) error {
	sz, err := unix.Flistxattr(fd, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return err
	}
	buf := make([]byte, sz)
	if sz, err = unix.Flistxattr(fd, buf); err != nil {
		return err
	}
	for _, k := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if k == "" {
			continue
		}
		n, err := unix.Fgetxattr(fd, k, nil)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return err
		}
		v := make([]byte, n)
		if n, err = unix.Fgetxattr(fd, k, v); err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = string(v[:n])
	}
	return nil
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
