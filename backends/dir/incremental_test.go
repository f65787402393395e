package dir_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// liveTree records everything a resume must give back: type, mode with
// setuid/setgid/sticky, owner, size, mtime (seconds), link target,
// content, xattrs and which paths are hard links of one file.
func liveTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		typ := st.Mode & unix.S_IFMT
		desc := fmt.Sprintf("type=%o mode=%o owner=%d:%d", typ, st.Mode&0o7777, st.Uid, st.Gid)
		if typ != unix.S_IFDIR {
			desc += fmt.Sprintf(" size=%d", st.Size)
		}
		if typ != unix.S_IFLNK {
			desc += fmt.Sprintf(" mtime=%d", time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Round(time.Second).Unix())
		}
		switch typ {
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			desc += " link=" + l
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			desc += " sha=" + hex.EncodeToString(h[:8])
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					desc += " hardlink-of=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		}
		if typ == unix.S_IFREG || typ == unix.S_IFDIR {
			desc += " xattrs=" + xattrList(t, p)
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func xattrList(t *testing.T, p string) string {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	sz, _ = unix.Llistxattr(p, buf)
	var kv []string
	for _, k := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		v := make([]byte, 256)
		n, _ := unix.Lgetxattr(p, k, v)
		kv = append(kv, k+"="+string(v[:n]))
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func diffTrees(want, got map[string]string) []string {
	var d []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			d = append(d, "missing "+p+": "+w)
		} else if g != w {
			d = append(d, "differs "+p+":\n  live:    "+w+"\n  resumed: "+g)
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			d = append(d, "extra "+p+": "+g)
		}
	}
	sort.Strings(d)
	return d
}

func TestIncrementalChainResumesLiveTree(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "bottle")
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	w := func(p, content string, mode os.FileMode) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	root0 := os.Geteuid() == 0
	// commit 1: the base tree
	w("etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	w("usr/bin/tool", strings.Repeat("binary", 1000), 0o755)
	w("usr/bin/suid", "#!/bin/sh\n", 0o755|os.ModeSetuid)
	w("home/agent/keep.txt", "unchanged\n", 0o600)
	w("home/agent/edit.txt", "first\n", 0o644)
	w("home/agent/gone.txt", "deleted later\n", 0o644)
	w("home/agent/tree/a/one", "1", 0o644)
	w("home/agent/tree/a/two", "2", 0o644)
	w("home/agent/replace/old-child", "old", 0o644)
	w("home/agent/becomes-file/child", "c", 0o644)
	w("home/agent/hard1", "shared", 0o644)
	must(os.Link(filepath.Join(root, "home/agent/hard1"), filepath.Join(root, "home/agent/hard2")))
	must(os.Symlink("keep.txt", filepath.Join(root, "home/agent/ln")))
	must(unix.Setxattr(filepath.Join(root, "home/agent/keep.txt"), "user.origin", []byte("base"), 0))
	must(os.MkdirAll(filepath.Join(root, "tmp"), 0o1777))
	w("tmp/scratch", "never snapshotted", 0o644)
	if root0 {
		must(os.Lchown(filepath.Join(root, "home/agent"), 1000, 1000))
		must(os.Lchown(filepath.Join(root, "home/agent/keep.txt"), 1000, 1000))
	}

	commit := func(wantDepth int) *snapshot.Result {
		t.Helper()
		res, err := snaptest.Commit(ctx, s, snapshot.Request{
			Slug: "incr-chain", Backend: "dir", SourceName: root,
			Source: &dir.Source{Dir: root, Tar: "tar", OneFS: true},
		}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if res.Incremental == nil || res.Incremental.Depth != wantDepth {
			t.Fatalf("commit: incremental %+v, want depth %d", res.Incremental, wantDepth)
		}
		return res
	}
	check := func(res *snapshot.Result) {
		t.Helper()
		img, err := s.Image(ctx, res.Manifest.Digest)
		must(err)
		out := filepath.Join(t.TempDir(), "resumed")
		must(rootfs.ExtractImage(ctx, img, out, rootfs.Options{NoChown: !root0}))
		want, got := liveTree(t, root), liveTree(t, out)
		delete(want, "tmp/scratch") // scratch space is left out of snapshots
		delete(want, "tmp")
		delete(got, "tmp")
		if d := diffTrees(want, got); len(d) > 0 {
			t.Fatalf("resumed tree differs from the live tree:\n%s", strings.Join(d, "\n"))
		}
	}
	time.Sleep(1100 * time.Millisecond) // out of the racy window (fileindex.RacyWindow)
	r1 := commit(1)
	check(r1)

	// commit 2: edits, deletions, a replaced directory, a dir that becomes a file
	time.Sleep(1100 * time.Millisecond) // out of the racy window of commit 1
	w("home/agent/edit.txt", "second\n", 0o644)
	must(os.Remove(filepath.Join(root, "home/agent/gone.txt")))
	must(os.RemoveAll(filepath.Join(root, "home/agent/tree")))
	must(os.RemoveAll(filepath.Join(root, "home/agent/replace")))
	w("home/agent/replace/new-child", "new", 0o600)
	must(os.RemoveAll(filepath.Join(root, "home/agent/becomes-file")))
	w("home/agent/becomes-file", "now a file", 0o644)
	w("home/agent/new/deep/file", "added", 0o640)
	must(os.Chmod(filepath.Join(root, "usr/bin/tool"), 0o700))
	must(unix.Setxattr(filepath.Join(root, "home/agent/keep.txt"), "user.origin", []byte("changed"), 0))
	r2 := commit(2)
	if r2.Incremental.Deleted == 0 || r2.Incremental.Changed == 0 || r2.Incremental.Added == 0 {
		t.Fatalf("commit 2 saw %+v", r2.Incremental)
	}
	check(r2)

	// commit 3: rewrite in place keeping size and mtime, hard link and
	// symlink changes, owner change, a file that becomes a directory
	time.Sleep(1100 * time.Millisecond)
	fi, err := os.Stat(filepath.Join(root, "home/agent/keep.txt"))
	must(err)
	w("home/agent/keep.txt", "UNCHANGED\n", 0o600)
	must(os.Chtimes(filepath.Join(root, "home/agent/keep.txt"), fi.ModTime(), fi.ModTime()))
	w("home/agent/hard1", "rewritten", 0o644) // through the link: both paths change
	must(os.Remove(filepath.Join(root, "home/agent/ln")))
	must(os.Symlink("edit.txt", filepath.Join(root, "home/agent/ln")))
	must(os.Remove(filepath.Join(root, "home/agent/edit.txt")))
	w("home/agent/edit.txt/inside", "was a file", 0o644)
	must(os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool-link")))
	if root0 {
		must(os.Lchown(filepath.Join(root, "etc/passwd"), 0, 42))
	}
	r3 := commit(3)
	check(r3)
	if r3.Incremental.Entries == 0 || r1.Incremental.Parent != "" || r3.Incremental.Parent != r2.Manifest.Digest.String() {
		t.Errorf("chain: %+v / %+v", r1.Incremental, r3.Incremental)
	}

	// --full makes one layer again
	res, err := snaptest.Commit(ctx, s, snapshot.Request{
		Slug: "incr-chain", Backend: "dir", SourceName: root, Full: true,
		Source: &dir.Source{Dir: root, Tar: "tar", OneFS: true},
	}, -1)
	must(err)
	if res.Incremental.Depth != 1 || res.Incremental.Full != "--full" {
		t.Fatalf("--full: %+v", res.Incremental)
	}
	check(res)
	// and the chain restarts from it
	time.Sleep(1100 * time.Millisecond)
	w("home/agent/after-full", "x", 0o644)
	check(commit(2))
}

func TestZstdChain(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a"), []byte(strings.Repeat("zstd ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}
	commit := func() *snapshot.Result {
		time.Sleep(1100 * time.Millisecond)
		res, err := snaptest.Commit(ctx, s, snapshot.Request{Slug: "incr-zstd", Backend: "dir", Source: &dir.Source{Dir: root, OneFS: true},
			Layer: layer.Options{Compression: layer.Zstd}}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if res.Layer.Media != types.OCILayerZStd {
			t.Fatalf("layer media type %s", res.Layer.Media)
		}
		return res
	}
	commit()
	if err := os.WriteFile(filepath.Join(root, "b"), []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	res := commit()
	img, err := s.Image(ctx, res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := img.Layers(); len(ls) != 2 {
		t.Fatalf("%d layers", len(ls))
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := rootfs.ExtractImage(ctx, img, out, rootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(liveTree(t, root), liveTree(t, out)); len(d) > 0 {
		t.Fatalf("zstd chain: %v", d)
	}
}

func TestChainSquashedAtMaxChain(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	var res *snapshot.Result
	for i := 1; i <= snapshot.MaxChain+1; i++ {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("f%03d", i)), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err = snaptest.Commit(ctx, s, snapshot.Request{Slug: "incr-squash", Backend: "dir", Source: &dir.Source{Dir: root, OneFS: true}}, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := i
		if i > snapshot.MaxChain {
			want = 1
		}
		if res.Incremental.Depth != want {
			t.Fatalf("commit %d: depth %d, want %d (%+v)", i, res.Incremental.Depth, want, res.Incremental)
		}
	}
	if !strings.Contains(res.Incremental.Full, "squashed") {
		t.Errorf("full because %q", res.Incremental.Full)
	}
	img, err := s.Image(ctx, res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := rootfs.ExtractImage(ctx, img, out, rootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(liveTree(t, root), liveTree(t, out)); len(d) > 0 {
		t.Fatalf("squashed snapshot: %v", d)
	}
}
