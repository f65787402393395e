package main

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// unpackLayer unpacks one uncompressed layer into dest the way smolvm
// 1.9.3's pack does in its guest (crates/smolvm-oci-layer/src/lib.rs
// extract_oci_layer, lines 235-335), including what that loses:
//
//   - the Rust tar crate unpacks with permissions, owners and mtimes
//     (set_preserve_permissions/mtime/ownerships, lines 240-245) but not
//     xattrs (set_unpack_xattrs is never called: its default is off), so
//     every xattr, security.capability included, is dropped;
//   - before each entry, its parent directory, if it exists, is set to
//     exactly 0755 (lines 303-312), so a directory keeps its own mode
//     (0700, setgid, sticky) only if nothing is unpacked below it, and
//     its mtime changes as children are created;
//   - .wh.NAME becomes an overlay whiteout (a 0/0 character device) and
//     .wh..wh..opq the trusted.overlay.opaque xattr (lines 273-289);
//   - a hard link whose target is not in this layer is skipped
//     (lines 294-300).
func unpackLayer(ctx context.Context, r io.Reader, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean("/" + hdr.Name)[1:]
		if name == "" {
			name = "."
		}
		base, dir := path.Base(name), path.Dir(name)
		switch {
		case base == ".wh..wh..opq":
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			_ = unix.Setxattr(filepath.Join(dest, dir), "trusted.overlay.opaque", []byte("y"), 0)
			continue
		case strings.HasPrefix(base, ".wh."):
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			p := filepath.Join(dest, dir, strings.TrimPrefix(base, ".wh."))
			_ = os.RemoveAll(p)
			if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %v", name, err)
			}
			continue
		}
		if hdr.Typeflag == tar.TypeLink {
			t := path.Clean("/" + hdr.Linkname)[1:]
			if _, err := root.Lstat(t); err != nil {
				continue
			}
		}
		if name != "." {
			if fi, err := root.Stat(dir); err == nil && fi.IsDir() {
				_ = root.Chmod(dir, 0o755)
			}
		}
		if err := unpackEntry(root, dest, name, hdr, tr); err != nil {
			switch hdr.Typeflag {
			case tar.TypeReg, tar.TypeDir, tar.TypeGNUSparse:
				return fmt.Errorf("failed to unpack '%s': %v", name, err)
			}
			// Non-regular entries may fail benignly; smolvm skips them.
		}
	}
}

// unpackEntry is the tar crate's unpack of one entry: parents created
// (0755 by the umask-free default), then the entry with its mode, owner
// and mtime, and no xattrs.
func unpackEntry(root *os.Root, dest, name string, hdr *tar.Header, r io.Reader) error {
	if name != "." {
		if err := root.MkdirAll(path.Dir(name), 0o755); err != nil {
			return err
		}
	}
	mode := fs.FileMode(hdr.Mode & 0o777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg:
		_ = root.Remove(name)
		f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = root.Remove(name)
		if err := root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		return root.Lchown(name, hdr.Uid, hdr.Gid)
	case tar.TypeLink:
		_ = root.Remove(name)
		return root.Link(path.Clean("/" + hdr.Linkname)[1:], name)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		_ = root.Remove(name)
		t := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			t = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			t = unix.S_IFBLK
		}
		if err := unix.Mknod(filepath.Join(dest, name), t|uint32(mode), int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		return nil
	}
	if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
		return err
	}
	// chmod after chown: chown clears setuid and setgid.
	if err := root.Chmod(name, mode|specialBits(hdr.Mode)); err != nil {
		return err
	}
	return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
}

func specialBits(m int64) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// mergeLayers merges layer directories bottom-up into merged the way
// pack does for images of several layers (src/cli/pack.rs:394-404, the
// "Merging layers" script): cp -a LAYER/. merged/ for each, ignoring its
// exit status. Whiteouts are copied as the character devices they are,
// never applied.
func mergeLayers(ctx context.Context, layers []string, merged string) error {
	if err := os.MkdirAll(merged, 0o755); err != nil {
		return err
	}
	for _, l := range layers {
		_ = exec.CommandContext(ctx, "cp", "-a", l+"/.", merged+"/").Run()
	}
	return ctx.Err()
}
