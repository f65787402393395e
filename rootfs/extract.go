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
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Options tune Extract.
type Options struct {
	// NoChown leaves owners as the extracting user (for unprivileged use).
	NoChown bool
}

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
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

// Extract applies one layer (an uncompressed tar) onto dir.
func Extract(ctx context.Context, r io.Reader, dir string, opts Options) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	type dirTime struct {
		name string
		hdr  *tar.Header
	}
	var dirs []dirTime
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
		name := path.Clean("/" + hdr.Name)[1:]
		if name == "" {
			continue
		}
		if strings.Contains(hdr.Name, "..") && hasDotDot(hdr.Name) {
			return fmt.Errorf("refusing %q: path contains \"..\"", hdr.Name)
		}
		base := path.Base(name)
		parent := path.Dir(name)
		if base == opaqueWhiteout {
			if err := clearDir(root, parent); err != nil {
				return err
			}
			continue
		}
		if strings.HasPrefix(base, whiteoutPrefix) {
			target := path.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := root.RemoveAll(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("applying whiteout %q: %w", name, err)
			}
			continue
		}
		if parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return fmt.Errorf("creating %q: %w", parent, err)
			}
		}
		// Replace whatever is there unless both are directories.
		if fi, err := root.Lstat(name); err == nil {
			if !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
				if err := root.RemoveAll(name); err != nil {
					return fmt.Errorf("replacing %q: %w", name, err)
				}
			}
		}
		mode := fs.FileMode(hdr.Mode & 0o777)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("creating directory %q: %w", name, err)
			}
			dirs = append(dirs, dirTime{name, hdr})
			continue
		case tar.TypeReg, tar.TypeRegA:
			f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("creating %q: %w", name, err)
			}
			_, err = io.Copy(f, tr)
			if err == nil {
				err = setXattrs(f, hdr)
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("writing %q: %w", name, err)
			}
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return fmt.Errorf("creating symlink %q: %w", name, err)
			}
		case tar.TypeLink:
			target := path.Clean("/" + hdr.Linkname)[1:]
			if hasDotDot(hdr.Linkname) || target == "" {
				return fmt.Errorf("refusing hard link %q to %q", name, hdr.Linkname)
			}
			if err := root.Link(target, name); err != nil {
				return fmt.Errorf("creating hard link %q: %w", name, err)
			}
			continue // owner and mode belong to the target
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			if err := mknod(root, name, hdr); err != nil {
				if errors.Is(err, syscall.EPERM) {
					continue // unprivileged: devices cannot be made
				}
				return fmt.Errorf("creating device %q: %w", name, err)
			}
		default:
			continue
		}
		if err := setMeta(root, name, hdr, mode, opts); err != nil {
			return err
		}
	}
	// Directory metadata last: their contents changed their mtimes, and
	// a read-only directory must be filled first.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := setDirXattrs(root, d.name, d.hdr); err != nil {
			return err
		}
		if err := setMeta(root, d.name, d.hdr, fs.FileMode(d.hdr.Mode&0o777), opts); err != nil {
			return err
		}
	}
	return nil
}

func setMeta(root *os.Root, name string, hdr *tar.Header, mode fs.FileMode, opts Options) error {
	if !opts.NoChown {
		if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown %q: %w", name, err)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil
	}
	if hdr.Mode&04000 != 0 {
		mode |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		mode |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		mode |= fs.ModeSticky
	}
	if err := root.Chmod(name, mode); err != nil {
		return fmt.Errorf("chmod %q: %w", name, err)
	}
	if err := root.Chtimes(name, hdr.ModTime, hdr.ModTime); err != nil {
		return fmt.Errorf("setting times of %q: %w", name, err)
	}
	return nil
}

func setXattrs(f *os.File, hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		if !strings.HasPrefix(k, "SCHILY.xattr.") {
			continue
		}
		err := unix.Fsetxattr(int(f.Fd()), strings.TrimPrefix(k, "SCHILY.xattr."), []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setting xattr %s: %w", k, err)
		}
	}
	return nil
}

func setDirXattrs(root *os.Root, name string, hdr *tar.Header) error {
	if len(hdr.PAXRecords) == 0 {
		return nil
	}
	f, err := root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return setXattrs(f, hdr)
}

func mknod(root *os.Root, name string, hdr *tar.Header) error {
	parent, err := root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer parent.Close()
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	return unix.Mknodat(int(parent.Fd()), path.Base(name), mode, int(dev))
}

func clearDir(root *os.Root, dir string) error {
	f, err := root.Open(dir)
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

func hasDotDot(n string) bool {
	for _, p := range strings.Split(n, "/") {
		if p == ".." {
			return true
		}
	}
	return false
}
