package fstree

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Entry is one path of a tree.
type Entry struct {
	Path   string
	Type   string
	Mode   fs.FileMode
	UID    int
	GID    int
	Size   int64
	SHA256 string
	Link   string
	// Inode groups hard links: entries sharing a non-empty value are links
	// of one file (the value is the first path of the group).
	Inode string
	// Xattrs lists the entry's extended attributes, sorted, as
	// "name=hex(value)" joined by ";" (overlayfs' own trusted.overlay.*
	// and security.selinux left out).
	Xattrs string
}

func (e Entry) String() string {
	return fmt.Sprintf("%s %s %v %d:%d %d %s %s %s [%s]", e.Path, e.Type, e.Mode, e.UID, e.GID, e.Size, e.SHA256, e.Link, e.Inode, e.Xattrs)
}

// Walk records the tree under root, skipping paths (relative, slash
// separated) for which skip returns true.
func Walk(root string, skip func(rel string) bool) (map[string]Entry, error) {
	out := map[string]Entry{}
	firstPath := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := Entry{Path: rel, Mode: fi.Mode(), UID: int(st.Uid), GID: int(st.Gid)}
		switch {
		case fi.Mode().IsRegular():
			e.Type = "file"
			e.Size = fi.Size()
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			e.SHA256 = h
			if st.Nlink > 1 {
				if first, ok := firstPath[st.Ino]; ok {
					e.Inode = first
				} else {
					firstPath[st.Ino] = rel
					e.Inode = rel
				}
			}
		case fi.IsDir():
			e.Type = "dir"
		case fi.Mode()&fs.ModeSymlink != 0:
			e.Type = "symlink"
			e.Link, err = os.Readlink(p)
			if err != nil {
				return err
			}
		default:
			e.Type = "other"
		}
		e.Xattrs = xattrs(p)
		out[rel] = e
		return nil
	})
	return out, err
}

// Diff lists the differences between two trees, one line each.
func Diff(want, got map[string]Entry) []string {
	var out []string
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			out = append(out, "missing: "+w.String())
			continue
		}
		if w != g {
			out = append(out, fmt.Sprintf("differs:\n  want %s\n  got  %s", w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			out = append(out, "extra: "+g.String())
		}
	}
	sort.Strings(out)
	return out
}

// Under returns a skip function for the given relative prefixes.
func Under(prefixes ...string) func(string) bool {
	return func(rel string) bool {
		for _, p := range prefixes {
			if rel == p || strings.HasPrefix(rel, p+"/") {
				return true
			}
		}
		return false
	}
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// xattrs reads p's extended attributes (not following symlinks).
func xattrs(p string) string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz <= 0 {
		return ""
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		return ""
	}
	var out []string
	for _, name := range strings.Split(string(buf[:sz]), "\x00") {
		if name == "" || strings.HasPrefix(name, "trusted.overlay.") || name == "security.selinux" {
			continue
		}
		n, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, n)
		if n, err = unix.Lgetxattr(p, name, v); err != nil {
			continue
		}
		out = append(out, name+"="+hex.EncodeToString(v[:n]))
	}
	sort.Strings(out)
	return strings.Join(out, ";")
}
