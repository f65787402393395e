package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Options tune Extract.
type Options struct {
	// NoChown leaves owners as the extracting user (for unprivileged use).
	NoChown bool
	// Devices creates character and block device nodes. Without it they
	// are skipped, each reported through Warn: a device node in a tree
	// on the host is a door to the host's hardware.
	Devices bool
	// Warn receives one line per entry that was skipped.
	Warn func(msg string)
}

const (
	whiteoutPrefix = layer.WhiteoutPrefix
	opaqueWhiteout = layer.OpaqueWhiteout
	// MaxNameLen bounds an entry's name (Linux's PATH_MAX): a longer one
	// cannot be named by most tools, and it bounds the depth of a tree.
	MaxNameLen = 4096
)

// ExtractImage extracts every layer of img, in order, into dir.
func ExtractImage(ctx context.Context, img v1.Image, dir string, opts Options) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading image layers: %w", err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("opening layer %d: %w", i, err)
		}
		err = Extract(ctx, rc, dir, opts)
		rc.Close()
		if err != nil {
			return fmt.Errorf("extracting layer %d: %w", i, err)
		}
	}
	return nil
}

// Extract applies one layer (an uncompressed tar) onto dir, creating dir
// (0700) if needed. Every path is resolved inside dir through an os.Root;
// entries are created and their owner, mode and times set through file
// descriptors and *at calls that do not follow a symlink in the last
// component, so no entry, whatever the entries before it, changes
// anything outside dir.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	x := &extractor{root: root, opts: opts}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		if err := x.entry(ctx, tr, hdr); err != nil {
			return err
		}
	}
	// Directory metadata last: their contents changed their mtimes, and
	// a read-only directory must be filled first.
	x.setCache("", nil)
	return x.applyDirs(ctx)
}

type extractor struct {
	root *os.Root
	opts Options
	dirs []*tar.Header
	// skipped holds the device nodes left out, so that hard links to
	// them are left out too instead of failing.
	skipped map[string]bool
	// cache is the directory that received the last entry (or was the
	// last created), open, so that entries of one directory and deep
	// trees do not resolve their whole path again.
	cacheName string
	cache     *os.File
}

func (x *extractor) close() {
	x.setCache("", nil)
	x.root.Close()
}

func (x *extractor) setCache(name string, f *os.File) {
	if x.cache != nil && x.cache != f {
		x.cache.Close()
	}
	x.cacheName, x.cache = name, f
}

func (x *extractor) skip(name string) {
	if x.skipped == nil {
		x.skipped = map[string]bool{}
	}
	x.skipped[name] = true
}

func (x *extractor) warn(format string, args ...any) {
	if x.opts.Warn != nil {
		x.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// parent returns the directory p (relative to the root), created if
// missing, resolved inside the root.
func (x *extractor) parent(p string) (*os.File, error) {
	if x.cache != nil && x.cacheName == p {
		return x.cache, nil
	}
	if p != "." {
		if err := x.root.MkdirAll(p, 0o755); err != nil {
			return nil, fmt.Errorf("creating %q: %w", p, err)
		}
	}
	f, err := openDir(x.root, p)
	if err != nil {
		return nil, fmt.Errorf("opening %q: %w", p, err)
	}
	x.setCache(p, f)
	return f, nil
}

func (x *extractor) entry(ctx context.Context, tr *tar.Reader, hdr *tar.Header) error {
	name, err := entryName(hdr)
	if err != nil || name == "" {
		return err
	}
	delete(x.skipped, name) // whatever comes now takes its place
	base := path.Base(name)
	dir := path.Dir(name)
	if done, err := x.whiteout(hdr, name, dir, base); done {
		return err
	}
	if !x.wanted(hdr, name) {
		return nil
	}
	pf, err := x.parent(dir)
	if err != nil {
		return err
	}
	pfd := int(pf.Fd())
	if err := x.replace(pfd, base, name, hdr.Typeflag == tar.TypeDir); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(pfd, base, name, hdr)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(ctx, tr, hdr, pfd, base, name)
	case tar.TypeLink:
		return x.link(name, hdr)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("creating symlink %q: %w", name, err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if made, err := x.node(pfd, base, name, hdr); !made {
			return err
		}
	}
	return x.metaAt(pfd, base, name, hdr)
}

// entryName checks an entry's name and returns it relative to the root
// ("" for the root itself).
func entryName(hdr *tar.Header) (string, error) {
	if len(hdr.Name) > MaxNameLen {
		return "", fmt.Errorf("refusing %.64q...: name is %d bytes long, more than %d", hdr.Name, len(hdr.Name), MaxNameLen)
	}
	if HasDotDot(hdr.Name) {
		return "", fmt.Errorf("refusing %q: path contains \"..\"", hdr.Name)
	}
	return path.Clean("/" + hdr.Name)[1:], nil
}

// whiteout applies name if it is a whiteout (done is then true): an
// opaque one empties its directory, another removes the entry it names.
func (x *extractor) whiteout(hdr *tar.Header, name, dir, base string) (done bool, err error) {
	if base == opaqueWhiteout {
		x.setCache("", nil)
		if err := clearDir(x.root, dir); err != nil {
			return true, fmt.Errorf("applying opaque whiteout %q: %w", name, err)
		}
		return true, nil
	}
	if !strings.HasPrefix(base, whiteoutPrefix) {
		return false, nil
	}
	gone := strings.TrimPrefix(base, whiteoutPrefix)
	if gone == "" || gone == "." || gone == ".." {
		return true, fmt.Errorf("refusing whiteout %q: it names no entry", hdr.Name)
	}
	x.setCache("", nil)
	if err := x.root.RemoveAll(path.Join(dir, gone)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("applying whiteout %q: %w", name, err)
	}
	return true, nil
}

// wanted reports whether the entry is one Extract creates: device nodes
// only with Options.Devices (else skipped with a warning), no other types
// than those of a root filesystem.
func (x *extractor) wanted(hdr *tar.Header, name string) bool {
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
		return true
	case tar.TypeChar, tar.TypeBlock:
		if !x.opts.Devices {
			x.warn("skipped device node %q (%s %d:%d)", "/"+name, devKind(hdr.Typeflag), hdr.Devmajor, hdr.Devminor)
			x.skip(name)
			return false
		}
		return true
	}
	return false
}

// replace removes whatever is at base in the directory pfd, unless both
// it and the new entry are directories.
func (x *extractor) replace(pfd int, base, name string, newIsDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil // nothing there
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case isDir && newIsDir:
	case isDir:
		if err := x.root.RemoveAll(name); err != nil {
			return fmt.Errorf("replacing %q: %w", name, err)
		}
	default:
		if err := unix.Unlinkat(pfd, base, 0); err != nil {
			return fmt.Errorf("replacing %q: %w", name, err)
		}
	}
	return nil
}

// dir creates a directory (its metadata waits for applyDirs) and keeps it
// open: the next entries are likely inside it.
func (x *extractor) dir(pfd int, base, name string, hdr *tar.Header) error {
	if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating directory %q: %w", name, err)
	}
	x.dirs = append(x.dirs, hdr)
	fd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening directory %q: %w", name, err)
	}
	x.setCache(name, os.NewFile(uintptr(fd), name))
	return nil
}

// link creates a hard link inside the root; owner and mode belong to its
// target.
func (x *extractor) link(name string, hdr *tar.Header) error {
	target := path.Clean("/" + hdr.Linkname)[1:]
	if HasDotDot(hdr.Linkname) || target == "" {
		return fmt.Errorf("refusing hard link %q to %q", name, hdr.Linkname)
	}
	if x.skipped[target] {
		x.warn("skipped hard link %q to skipped device node %q", "/"+name, "/"+target)
		x.skip(name)
		return nil
	}
	// linkat without AT_SYMLINK_FOLLOW: a link to a symlink is a
	// second symlink, never the file it points to.
	if err := x.root.Link(target, name); err != nil {
		return fmt.Errorf("creating hard link %q: %w", name, err)
	}
	return nil
}

// node creates a device node or FIFO; made is false when it was skipped
// (not permitted) or failed.
func (x *extractor) node(pfd int, base, name string, hdr *tar.Header) (made bool, err error) {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	default:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := mknodAt(pfd, base, mode, dev); err != nil {
		if errors.Is(err, unix.EPERM) {
			x.warn("skipped %s %q: not permitted to create it (%v)", devKind(hdr.Typeflag), "/"+name, err)
			x.skip(name)
			return false, nil
		}
		return false, fmt.Errorf("creating %s %q: %w", devKind(hdr.Typeflag), name, err)
	}
	return true, nil
}

// file writes a regular file, keeping runs of zeros as holes.
func (x *extractor) file(ctx context.Context, tr *tar.Reader, hdr *tar.Header, pfd int, base, name string) error {
	fd, err := unix.Openat(pfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = writeSparse(ctx, f, tr)
	if err == nil && !x.opts.NoChown {
		if err = f.Chown(hdr.Uid, hdr.Gid); err != nil {
			err = fmt.Errorf("chown: %w", err)
		}
	}
	if err == nil {
		if err = f.Chmod(fileMode(hdr)); err != nil {
			err = fmt.Errorf("chmod: %w", err)
		}
	}
	// xattrs after the owner: a chown clears security.capability.
	if err == nil {
		err = setXattrs(fd, hdr)
	}
	if err == nil {
		err = setFdTimes(fd, hdr.ModTime)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q: %w", name, err)
	}
	return nil
}

// metaAt sets owner, mode and mtime of base in the directory pfd without
// following base if it is a symlink.
func (x *extractor) metaAt(pfd int, base, name string, hdr *tar.Header) error {
	if !x.opts.NoChown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %q: %w", name, err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := chmodAt(pfd, base, fileMode(hdr)); err != nil {
			return fmt.Errorf("chmod %q: %w", name, err)
		}
	}
	if err := setTimes(pfd, base, hdr.ModTime, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %q: %w", name, err)
	}
	return nil
}

// applyDirs applies each directory entry's xattrs, owner, mode and
// mtime, if that directory is still there (a later entry may have
// replaced it or a parent). Directories are visited depth first with a
// stack of open descriptors, each opened from its parent without
// following symlinks, and each gets its metadata once its subtree is
// done: linear in the number of entries, however deep the tree.
func (x *extractor) applyDirs(ctx context.Context) error {
	last := map[string]*tar.Header{}
	for _, h := range x.dirs {
		last[path.Clean("/" + h.Name)[1:]] = h
	}
	names := make([]string, 0, len(last))
	for n := range last {
		names = append(names, n)
	}
	// Sorting with "/" lowest puts every directory right before its
	// descendants.
	keys := make(map[string]string, len(names))
	for _, n := range names {
		keys[n] = strings.ReplaceAll(n, "/", "\x00")
	}
	sort.Slice(names, func(i, j int) bool { return keys[names[i]] < keys[names[j]] })
	type open struct {
		name string
		fd   int
		hdr  *tar.Header
	}
	rf, err := openDir(x.root, ".")
	if err != nil {
		return err
	}
	defer rf.Close()
	stack := []open{{name: "", fd: int(rf.Fd())}}
	var firstErr error
	pop := func() {
		top := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if top.hdr != nil && firstErr == nil {
			firstErr = x.dirMeta(top.fd, top.name, top.hdr)
		}
		unix.Close(top.fd)
	}
	defer func() {
		for len(stack) > 1 {
			pop()
		}
	}()
	within := func(dir, name string) bool { return dir == "" || strings.HasPrefix(name, dir+"/") }
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		for len(stack) > 1 && !within(stack[len(stack)-1].name, n) {
			pop()
		}
		if firstErr != nil {
			return firstErr
		}
		top := stack[len(stack)-1]
		rest := n
		if top.name != "" {
			rest = strings.TrimPrefix(n, top.name+"/")
		}
		comps := strings.Split(rest, "/")
		cur := top.name
		for i, c := range comps {
			fd, err := unix.Openat(stack[len(stack)-1].fd, c, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
					break // replaced by a later entry
				}
				return fmt.Errorf("opening directory %q: %w", path.Join(cur, c), err)
			}
			cur = path.Join(cur, c)
			o := open{name: cur, fd: fd}
			if i == len(comps)-1 {
				o.hdr = last[n]
			}
			stack = append(stack, o)
		}
	}
	for len(stack) > 1 {
		pop()
	}
	return firstErr
}

// dirMeta applies a directory entry's metadata through its descriptor.
func (x *extractor) dirMeta(fd int, name string, hdr *tar.Header) error {
	if err := setXattrs(fd, hdr); err != nil {
		return fmt.Errorf("directory %q: %w", name, err)
	}
	if !x.opts.NoChown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown %q: %w", name, err)
		}
	}
	if err := unix.Fchmod(fd, unixMode(fileMode(hdr))); err != nil {
		return fmt.Errorf("chmod %q: %w", name, err)
	}
	if err := setFdTimes(fd, hdr.ModTime); err != nil {
		return fmt.Errorf("setting times of %q: %w", name, err)
	}
	return nil
}

func fileMode(hdr *tar.Header) fs.FileMode {
	mode := fs.FileMode(hdr.Mode & 0o777)
	if hdr.Mode&04000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// setTimes sets atime and mtime of base in dirfd (or of dirfd itself
// with AT_EMPTY_PATH and base "").
func setTimes(dirfd int, base string, t time.Time, flags int) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if t.IsZero() {
		ts = unix.NsecToTimespec(0)
	}
	err := unix.UtimesNanoAt(dirfd, base, []unix.Timespec{ts, ts}, flags)
	if err != nil && base == "" && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT)) {
		// Kernels whose utimensat lacks AT_EMPTY_PATH.
		tv := unix.NsecToTimeval(t.UnixNano())
		err = unix.Futimes(dirfd, []unix.Timeval{tv, tv})
	}
	return err
}

func setXattrs(fd int, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, "SCHILY.xattr.") {
			continue
		}
		err := unix.Fsetxattr(fd, strings.TrimPrefix(k, "SCHILY.xattr."), []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setting xattr %s: %w", k, err)
		}
	}
	return nil
}

func devKind(t byte) string {
	switch t {
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	}
	return "FIFO"
}

func clearDir(root *os.Root, dir string) error {
	f, err := openDir(root, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := root.RemoveAll(path.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// HasDotDot reports whether the slash-separated path n has a ".."
// component: a tar entry's name or link target that could climb out of
// the tree it is extracted into.
func HasDotDot(n string) bool {
	for n != "" {
		var part string
		part, n, _ = strings.Cut(n, "/")
		if part == ".." {
			return true
		}
	}
	return false
}

// openDir opens directory name inside root. O_DIRECTORY makes a FIFO (or
// anything else) in its place fail instead of blocking the open.
func openDir(root *os.Root, name string) (*os.File, error) {
	return root.OpenFile(name, os.O_RDONLY|unix.O_DIRECTORY, 0)
}
