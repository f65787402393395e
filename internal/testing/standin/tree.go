package standin

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// TreeOptions tune WriteTree.
type TreeOptions struct {
	// Owner, when not nil, replaces every entry's uid and gid (the way
	// older smolvm packs re-owned files to the host user).
	Owner *int
}

// WriteTree writes the tree under dir to w as a PAX tar, the way Apple's
// container export writes a container's root filesystem: relative names
// without a root entry, numeric owners, xattrs as SCHILY.xattr records,
// the first path of a hard-linked file as a regular file and the other
// paths as hard links after every other entry; sockets, FIFOs and device
// nodes are left out.
func WriteTree(ctx context.Context, w io.Writer, dir string, opts TreeOptions) error {
	tw := tar.NewWriter(w)
	first := map[uint64]string{}
	type link struct {
		name, target string
		hdr          *tar.Header
	}
	var links []link
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		var target string
		if fi.Mode()&fs.ModeSymlink != 0 {
			if target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		switch {
		case fi.Mode().IsRegular(), fi.IsDir(), fi.Mode()&fs.ModeSymlink != 0:
		default:
			return nil // sockets, FIFOs, devices
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if opts.Owner != nil {
			hdr.Uid, hdr.Gid = *opts.Owner, *opts.Owner
		}
		hdr.Uname, hdr.Gname = "", ""
		hdr.Format = tar.FormatPAX
		hdr.AccessTime, hdr.ChangeTime = time0, time0
		if x := xattrs(p); len(x) > 0 {
			hdr.PAXRecords = x
		}
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			if t, ok := first[st.Ino]; ok {
				lh := *hdr
				lh.Typeflag, lh.Linkname, lh.Size = tar.TypeLink, t, 0
				links = append(links, link{hdr.Name, t, &lh})
				return nil
			}
			first[st.Ino] = hdr.Name
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(tw, f, hdr.Size)
		return err
	})
	if err != nil {
		return err
	}
	for _, l := range links {
		if err := tw.WriteHeader(l.hdr); err != nil {
			return err
		}
	}
	return tw.Close()
}

var time0 time.Time

func xattrs(p string) map[string]string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if errors.Is(err, unix.ERANGE) {
		var sz int
		if sz, err = unix.Llistxattr(p, nil); err == nil {
			buf = make([]byte, sz)
			n, err = unix.Llistxattr(p, buf)
		}
	}
	if err != nil || n <= 0 {
		return nil
	}
	out := map[string]string{}
	for _, name := range splitNull(buf[:n]) {
		sz, err := unix.Lgetxattr(p, name, nil)
		if err != nil || sz < 0 {
			continue
		}
		v := make([]byte, sz)
		if sz, err = unix.Lgetxattr(p, name, v); err == nil {
			out["SCHILY.xattr."+name] = string(v[:sz])
		}
	}
	return out
}

func splitNull(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

// FixCaps sets again the security.capability xattr of every regular file
// of img's layers that carries one, on the tree extracted into dir:
// rootfs.Extract sets xattrs before it changes owners, and the kernel
// clears security.capability on chown. (The real runtimes' unpackers set
// it last.)
func FixCaps(ctx context.Context, layers []io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	const key = "SCHILY.xattr.security.capability"
	for _, r := range layers {
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
				return err
			}
			v, ok := hdr.PAXRecords[key]
			if !ok || hdr.Typeflag != tar.TypeReg {
				continue
			}
			name := filepath.Clean("/" + hdr.Name)[1:]
			f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
			if err != nil {
				continue // removed by a later layer
			}
			err = unix.Fsetxattr(int(f.Fd()), "security.capability", []byte(v), 0)
			f.Close()
			if err != nil {
				return fmt.Errorf("setting security.capability on %s: %w", name, err)
			}
		}
	}
	return nil
}
