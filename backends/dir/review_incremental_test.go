package dir_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
)

// Incremental commits across type changes a bottle can make between two
// commits (symlink to directory, directory to a symlink that points out
// of the tree, a FIFO in place of a file) and a hard link whose other
// path lies in a directory nothing else changed: each resumes into the
// live tree, directory mtimes included.
func TestIncrementalTypeChangesAndLinks(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "bottle")
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w := func(p, content string) {
		t.Helper()
		p = filepath.Join(root, p)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(content), 0o644))
	}
	old := time.Unix(1_600_000_000, 0)
	w("a/changed", "one")
	w("quiet/other", "x")
	must(os.Link(filepath.Join(root, "a/changed"), filepath.Join(root, "quiet/l2")))
	must(os.MkdirAll(filepath.Join(root, "real"), 0o755))
	must(os.Symlink("real", filepath.Join(root, "s")))
	w("d/child", "in d")
	w("f", "file")
	must(os.Chtimes(filepath.Join(root, "quiet"), old, old))

	commit := func() *snapshot.Result {
		t.Helper()
		res, err := snaptest.Commit(ctx, s, snapshot.Request{
			Slug: "review-types", Backend: "dir", SourceName: root,
			Source: &dir.Source{Dir: root, Tar: "tar", OneFS: true},
		}, -1)
		must(err)
		return res
	}
	check := func(res *snapshot.Result) {
		t.Helper()
		img, err := s.Image(ctx, res.Manifest.Digest)
		must(err)
		out := filepath.Join(t.TempDir(), "resumed")
		must(rootfs.ExtractImage(ctx, img, out, rootfs.Options{NoChown: os.Geteuid() != 0}))
		if d := diffTrees(liveTree(t, root), liveTree(t, out)); len(d) > 0 {
			t.Fatalf("resumed tree differs from the live tree:\n%s", strings.Join(d, "\n"))
		}
	}
	time.Sleep(1100 * time.Millisecond)
	check(commit())

	time.Sleep(1100 * time.Millisecond)
	w("a/changed", "two") // quiet/l2 changes with it
	must(os.Remove(filepath.Join(root, "s")))
	w("s/inside", "s is a directory now")
	must(os.RemoveAll(filepath.Join(root, "d")))
	must(os.Symlink(t.TempDir(), filepath.Join(root, "d")))
	must(os.Remove(filepath.Join(root, "f")))
	must(os.Mkdir(filepath.Join(root, "f"), 0o700))
	r2 := commit()
	if r2.Incremental == nil || r2.Incremental.Parent == "" {
		t.Fatalf("commit 2 is not incremental: %+v", r2.Incremental)
	}
	check(r2)
}
