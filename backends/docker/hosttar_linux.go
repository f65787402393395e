//go:build linux

package docker

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bb/snapshot"
	"golang.org/x/sys/unix"
)

// checkMerged makes sure the merged directory shows the bottle's files
// with the owners the bottle sees: under the daemon's user namespace
// remapping the root directory belongs to a shifted uid, and the stream
// is left to the guest tar.
func checkMerged(merged string) error {
	var st unix.Stat_t
	if err := unix.Lstat(merged, &st); err != nil {
		return noUpper("%v", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Uid != 0 {
		return noUpper("%s is not a directory owned by root (user namespace remapping?)", merged)
	}
	return nil
}

// hostTar streams the paths of a plan as a tar, read from the bottle's
// merged overlay directory on this host: the files the bottle sees,
// without a process in the bottle and without the daemon in the data
// path. The tree is the bottle's own content, so every path is resolved
// one component at a time with openat and O_NOFOLLOW from the merged
// directory's descriptor: no symlink placed by the bottle is followed,
// and a path whose parent is no longer a directory is skipped (it
// changed while it was read); only what an O_PATH descriptor shows to be
// a regular file is opened for reading (never a device node). It writes what GNU tar --no-recursion
// --numeric-owner --xattrs would: the same types, numeric owners,
// modes, mtimes, hard links among the streamed paths, and the user.* and
// security.* xattrs (what tar in the bottle can read); sockets are left
// out.
type hostTar struct {
	root  int
	tw    *tar.Writer
	stack []openDir
	links map[[2]uint64]string
	buf   []byte
	xbuf  []byte
	vbuf  []byte
	// sizes, when set, makes a dry run: regular files are written
	// without their data, with size 0, and their sizes are kept here by
	// name (see plannedTarSize).
	sizes map[string]int64

	mu       sync.Mutex
	warnings []string
}

type openDir struct {
	path string
	fd   int
}

// hostStream is the reading end of a hostTar.
type hostStream struct {
	pr   *io.PipeReader
	h    *hostTar
	done chan struct{}
}

// startHostTar starts streaming paths (relative, clean, sorted) from the
// merged directory. Once every path is written, verify must confirm that
// the bottle ran all along (a removed bottle's files vanish from under
// the reader, which would skip them): only then does the stream end
// without an error.
func startHostTar(ctx context.Context, merged string, paths []string, verify func(context.Context) error) (io.ReadCloser, error) {
	return startHostTarSizes(ctx, merged, paths, verify, nil)
}

// startHostTarSizes is startHostTar, a dry run when sizes is set.
func startHostTarSizes(ctx context.Context, merged string, paths []string, verify func(context.Context) error, sizes map[string]int64) (*hostStream, error) {
	root, err := unix.Open(merged, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the bottle's merged directory %s: %w", merged, err)
	}
	pr, pw := io.Pipe()
	h := &hostTar{root: root, links: map[[2]uint64]string{}, buf: make([]byte, 256<<10), xbuf: make([]byte, 64<<10), vbuf: make([]byte, 64<<10), sizes: sizes}
	s := &hostStream{pr: pr, h: h, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer h.close()
		bw := bufio.NewWriterSize(pw, 256<<10)
		h.tw = tar.NewWriter(bw)
		err := h.write(ctx, paths)
		if err == nil {
			err = verify(ctx)
		}
		if err == nil {
			err = h.tw.Close()
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	return s, nil
}

func (s *hostStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// sparseSlack is how many bytes of holes make a file sparse for
// findSparse.
const sparseSlack = 1 << 20

// findSparse returns the first of paths (as startHostTar resolves them)
// that is a sparse regular file: Go's tar writer cannot write sparse
// entries, so the host read would store its holes as zeros, where GNU
// tar --sparse in the bottle keeps them.
func findSparse(merged string, paths []string) (string, bool) {
	root, err := unix.Open(merged, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	h := &hostTar{root: root}
	defer h.close()
	for _, p := range paths {
		dir, base := "", p
		if j := strings.LastIndexByte(p, '/'); j >= 0 {
			dir, base = p[:j], p[j+1:]
		}
		pfd, ok := h.dir(dir)
		if !ok {
			continue
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size-st.Blocks*512 > sparseSlack {
			return p, true
		}
	}
	return "", false
}

func (s *hostStream) Close() error {
	s.pr.CloseWithError(errors.New("stream closed"))
	<-s.done
	return nil
}

// Warnings implements snapshot.Warner.
func (s *hostStream) Warnings() []string {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return append([]string(nil), s.h.warnings...)
}

func (h *hostTar) warn(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.warnings) < 20 {
		h.warnings = append(h.warnings, fmt.Sprintf(format, args...))
	}
}

func (h *hostTar) close() {
	for _, d := range h.stack {
		unix.Close(d.fd)
	}
	h.stack = nil
	unix.Close(h.root)
}

func (h *hostTar) write(ctx context.Context, paths []string) error {
	for i, p := range paths {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		dir, base := "", p
		if j := strings.LastIndexByte(p, '/'); j >= 0 {
			dir, base = p[:j], p[j+1:]
		}
		pfd, ok := h.dir(dir)
		if !ok {
			continue // a parent went away or is no directory now
		}
		if err := h.entry(pfd, p, base); err != nil {
			return err
		}
	}
	return nil
}

// dir returns a descriptor of the directory dir ("" is the root),
// reusing the descriptors open along the previous path.
func (h *hostTar) dir(dir string) (int, bool) {
	for len(h.stack) > 0 {
		top := h.stack[len(h.stack)-1]
		if dir == top.path || strings.HasPrefix(dir, top.path+"/") {
			break
		}
		unix.Close(top.fd)
		h.stack = h.stack[:len(h.stack)-1]
	}
	fd, at := h.root, ""
	if len(h.stack) > 0 {
		top := h.stack[len(h.stack)-1]
		fd, at = top.fd, top.path
	}
	if dir == at {
		return fd, true
	}
	rest := dir
	if at != "" {
		rest = dir[len(at)+1:]
	}
	for _, comp := range strings.Split(rest, "/") {
		if len(h.stack) >= maxUpperDepth {
			return 0, false
		}
		nfd, err := unix.Openat(fd, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return 0, false
		}
		if at == "" {
			at = comp
		} else {
			at += "/" + comp
		}
		h.stack = append(h.stack, openDir{path: at, fd: nfd})
		fd = nfd
	}
	return fd, true
}

// entry writes the entry base of the directory pfd, named name.
func (h *hostTar) entry(pfd int, name, base string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // gone: tar --ignore-failed-read
	}
	hdr := &tar.Header{Name: "./" + name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(st.Mtim.Sec, st.Mtim.Nsec)}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && typ != unix.S_IFSOCK && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := h.links[key]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, "./"+first
			return h.tw.WriteHeader(hdr)
		}
		h.links[key] = name
	}
	if h.sizes != nil && (typ == unix.S_IFDIR || typ == unix.S_IFREG) {
		return h.dryEntry(pfd, name, base, hdr, &st)
	}
	switch typ {
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
		fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		hdr.PAXRecords = h.xattrs(fd)
		unix.Close(fd)
		return h.tw.WriteHeader(hdr)
	case unix.S_IFREG:
		return h.file(pfd, base, hdr, &st)
	case unix.S_IFLNK:
		n, err := unix.Readlinkat(pfd, base, h.buf[:unix.PathMax])
		if err != nil {
			h.unlink(&st, hdr.Name)
			return nil
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(h.buf[:n])
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if typ == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		h.warn("%s: socket ignored", name)
		return nil
	}
	return h.tw.WriteHeader(hdr)
}

// file writes a regular file: the header from the open file's own
// metadata, then exactly its size in bytes (zeros for what it lost
// while it was read, as GNU tar pads a file that shrank).
func (h *hostTar) file(pfd int, base string, hdr *tar.Header, lst *unix.Stat_t) error {
	// O_PATH first: the bottle may swap a device node in after the
	// fstatat, and opening a device for reading runs its driver (a
	// watchdog arms itself on open). Only a regular file is then opened
	// for reading, through its O_PATH descriptor, so it is the same inode.
	pathFD, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		h.unlink(lst, hdr.Name)
		return nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(pathFD, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != lst.Ino || st.Dev != lst.Dev {
		unix.Close(pathFD)
		h.unlink(lst, hdr.Name)
		h.warn("%s: file changed as we read it", strings.TrimPrefix(hdr.Name, "./"))
		return nil
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pathFD), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	unix.Close(pathFD)
	if err != nil {
		return fmt.Errorf("opening %s of the bottle through /proc/self/fd: %w", strings.TrimPrefix(hdr.Name, "./"), err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != lst.Ino || st.Dev != lst.Dev {
		h.unlink(lst, hdr.Name)
		h.warn("%s: file changed as we read it", strings.TrimPrefix(hdr.Name, "./"))
		return nil
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	hdr.Mode, hdr.Uid, hdr.Gid = int64(st.Mode&0o7777), int(st.Uid), int(st.Gid)
	hdr.ModTime = time.Unix(st.Mtim.Sec, st.Mtim.Nsec)
	hdr.PAXRecords = h.xattrs(fd)
	if h.sizes != nil {
		h.sizes[strings.TrimPrefix(hdr.Name, "./")] = st.Size
		hdr.Size = 0
		return h.tw.WriteHeader(hdr)
	}
	if err := h.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(h.tw, io.LimitReader(f, st.Size), h.buf)
	if err != nil && !isReadErr(err) {
		return err
	}
	if n < st.Size {
		h.warn("%s: file shrank by %d bytes; padding with zeros", strings.TrimPrefix(hdr.Name, "./"), st.Size-n)
		clear(h.buf)
		for n < st.Size {
			k := min(int64(len(h.buf)), st.Size-n)
			if _, err := h.tw.Write(h.buf[:k]); err != nil {
				return err
			}
			n += k
		}
	}
	return nil
}

// unlink forgets the entry named name (as in its header) as the first
// path of the inode st when it was left out of the stream: a later hard
// link of the inode is then written whole, not as a link to nothing.
func (h *hostTar) unlink(st *unix.Stat_t, name string) {
	key := [2]uint64{st.Dev, st.Ino}
	if h.links[key] == strings.TrimPrefix(name, "./") {
		delete(h.links, key)
	}
}

// isReadErr tells a failure to read the bottle's file (kept as a
// warning, the file padded) from one of the tar writer's.
func isReadErr(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe)
}

// dryEntry writes the header of a directory or regular file for a dry
// run, from the fstatat of the entry and the xattrs read by path (the
// entry's name below the descriptor of its directory, not followed),
// without opening it: a regular file's size is kept in h.sizes.
func (h *hostTar) dryEntry(pfd int, name, base string, hdr *tar.Header, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		hdr.Typeflag, hdr.Name = tar.TypeDir, hdr.Name+"/"
	} else {
		hdr.Typeflag = tar.TypeReg
		h.sizes[name] = st.Size
	}
	hdr.PAXRecords = h.xattrsAt(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base))
	return h.tw.WriteHeader(hdr)
}

// xattrsAt is xattrs for the path p, whose last component is not
// followed.
func (h *hostTar) xattrsAt(p string) map[string]string {
	return h.xattrRecords(func(b []byte) (int, error) { return unix.Llistxattr(p, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(p, name, b) })
}

// xattrs returns the user.* and security.* xattrs of fd as PAX records.
func (h *hostTar) xattrs(fd int) map[string]string {
	return h.xattrRecords(func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) })
}

// xattrRecords lists the xattrs through list, reads the user.* and
// security.* ones through get and returns them as PAX records.
func (h *hostTar) xattrRecords(list func([]byte) (int, error), get func(string, []byte) (int, error)) map[string]string {
	n, err := list(h.xbuf)
	if err != nil || n == 0 {
		return nil
	}
	var recs map[string]string
	for _, name := range strings.Split(strings.TrimRight(string(h.xbuf[:n]), "\x00"), "\x00") {
		if !strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "security.") {
			continue
		}
		m, err := get(name, h.vbuf)
		if err != nil {
			continue
		}
		if recs == nil {
			recs = map[string]string{}
		}
		recs["SCHILY.xattr."+name] = string(h.vbuf[:m])
	}
	return recs
}

// maxPlannedFile is the largest file plannedTarSize plans: a larger one
// needs a PAX size record, which a dry run's header (size 0) lacks.
const maxPlannedFile = 1<<33 - 1

// plannedTarSize returns the size of the layer tar that streaming pl
// from the merged directory gives, once rewritten (plan.rewrite) and
// filtered (snapshot.Filter with excludes), as the bottle's files are
// now: it runs the same pipeline on the files' headers alone and adds
// their data's size. A bottle that changes meanwhile streams another
// size; whoever uses this must compare it with what was streamed.
func plannedTarSize(ctx context.Context, merged string, pl *plan, excludes []string) (int64, error) {
	sizes := map[string]int64{}
	hs, err := startHostTarSizes(ctx, merged, pl.paths, func(context.Context) error { return nil }, sizes)
	if err != nil {
		return 0, err
	}
	rs := newRewriteStream(hs, pl, false)
	defer rs.Close()
	pr, pw := io.Pipe()
	defer pr.Close()
	go func() {
		_, err := snapshot.Filter(rs, pw, snapshot.FilterOptions{Excludes: excludes, WhiteoutMark: pl.mark})
		pw.CloseWithError(err)
	}()
	cr := &countingReader{r: pr}
	tr := tar.NewReader(cr)
	var files []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size == 0 {
			files = append(files, cleanRel(hdr.Name))
		}
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return 0, err
	}
	rs.Close() // the dry run is over: sizes is complete
	n := cr.n
	for _, f := range files {
		sz := sizes[f]
		if sz > maxPlannedFile {
			return 0, fmt.Errorf("%s is too large to plan", f)
		}
		n += (sz + 511) &^ 511
	}
	return n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
