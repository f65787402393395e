package dir_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
)

// A bottle holding files named like whiteouts (".wh.foo" next to a base
// "foo", ".wh..wh..opq" in a base directory, a directory ".wh.dir"):
// every commit (full, incremental, --full) leaves them out and names
// them, and a resume gives back everything else, "foo" and the base
// directory's contents included, while the whiteouts bb itself makes for
// deletions still apply.
func TestReservedNamesLeftOutNotApplied(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "bottle")
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	w := func(p, content string) {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("work/foo", "base foo")
	w("work/base/keep", "base dir content")
	w("work/base/sub/deep", "deep")
	w("work/gone", "deleted later")
	reserved := []string{".wh.top", "work/.wh.foo", "work/.wh.dir", "work/.wh.dir/inner", "work/base/.wh..wh..opq"}
	commit := func(full bool, wantParent bool) *snapshot.Result {
		t.Helper()
		res, err := snaptest.Commit(ctx, s, snapshot.Request{
			Slug: "harden-wh", Backend: "dir", SourceName: root, Full: full,
			Source: &dir.Source{Dir: root, Tar: "tar", OneFS: true},
		}, -1)
		if err != nil {
			t.Fatal(err)
		}
		if (res.Incremental.Parent != "") != wantParent {
			t.Fatalf("incremental %+v, want parent %v", res.Incremental, wantParent)
		}
		return res
	}
	check := func(res *snapshot.Result, wantReserved []string) {
		t.Helper()
		if res.Stats.Reserved != int64(len(wantReserved)) {
			t.Errorf("Stats.Reserved = %d (%q), want %d", res.Stats.Reserved, res.Stats.ReservedPaths, len(wantReserved))
		}
		got := append([]string{}, res.Stats.ReservedPaths...)
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(wantReserved, " ") {
			t.Errorf("ReservedPaths = %q, want %q", got, wantReserved)
		}
		warned := false
		for _, m := range res.Warnings {
			if strings.Contains(m, "work/.wh.foo") && strings.Contains(m, "rename them") {
				warned = true
			}
		}
		if len(wantReserved) > 0 && !warned {
			t.Errorf("no warning names the left-out paths: %q", res.Warnings)
		}
		img, err := s.Image(ctx, res.Manifest.Digest)
		if err != nil {
			t.Fatal(err)
		}
		// Whiteouts in the layers are only the ones bb made for deletions.
		ls, _ := img.Layers()
		for _, l := range ls {
			rc, err := l.Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if layer.Reserved(h.Name) && h.Name != "work/.wh.gone" {
					t.Errorf("layer holds %q", h.Name)
				}
				if _, ok := h.PAXRecords[snapshot.WhiteoutMarkRecord]; ok {
					t.Errorf("layer entry %q keeps the whiteout mark", h.Name)
				}
			}
			rc.Close()
		}
		out := filepath.Join(t.TempDir(), "resumed")
		if err := rootfs.ExtractImage(ctx, img, out, rootfs.Options{NoChown: os.Geteuid() != 0}); err != nil {
			t.Fatal(err)
		}
		want, gotTree := liveTree(t, root), liveTree(t, out)
		for p := range want {
			if layer.Reserved(p) {
				delete(want, p)
			}
		}
		if d := diffTrees(want, gotTree); len(d) > 0 {
			t.Fatalf("resumed tree differs from the live tree without the reserved names:\n%s", strings.Join(d, "\n"))
		}
		if b, err := os.ReadFile(filepath.Join(out, "work/foo")); err != nil || string(b) != "base foo" {
			t.Fatalf("work/foo after resume: %q, %v", b, err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // out of the racy window (fileindex.RacyWindow)
	check(commit(false, false), nil)

	// The agent makes files named like whiteouts, and deletes one file.
	time.Sleep(1100 * time.Millisecond)
	w(".wh.top", "top")
	w("work/.wh.foo", "not a whiteout")
	w("work/.wh.dir/inner", "inside a reserved directory")
	w("work/base/.wh..wh..opq", "not an opaque whiteout")
	if err := os.Remove(filepath.Join(root, "work/gone")); err != nil {
		t.Fatal(err)
	}
	sort.Strings(reserved)
	check(commit(false, true), reserved)
	// Unchanged, they are still named by the next incremental commit.
	time.Sleep(1100 * time.Millisecond)
	w("work/new", "new")
	check(commit(false, true), reserved)
	// A full snapshot leaves them out through the filter.
	check(commit(true, false), reserved)
	// Deleted again: nothing is whited out for them.
	time.Sleep(1100 * time.Millisecond)
	for _, p := range []string{".wh.top", "work/.wh.foo", "work/.wh.dir", "work/base/.wh..wh..opq"} {
		if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	res := commit(false, true)
	check(res, nil)
	if res.Incremental.Deleted != 0 {
		t.Errorf("deleting reserved names counted %d deletions", res.Incremental.Deleted)
	}
}

// Through the CLI: bb commit names the left-out files on stderr and in
// --json, bb diff --live says they are in no snapshot, and bb resume
// gives back the base file they would have hidden.
func TestReservedNamesCLI(t *testing.T) {
	root := filepath.Join(t.TempDir(), "bottle")
	home := t.TempDir()
	for p, c := range map[string]string{"work/foo": "base", "work/.wh.foo": "agent", "work/.wh..wh..opq": "agent"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	c := cli.New()
	c.SetArgs([]string{"--home", home, "commit", "--from-dir", root, "--slug", "harden-wh-cli", "--json"})
	c.SetOut(&out)
	c.SetErr(&errb)
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bb commit: %v\n%s", err, errb.String())
	}
	if !strings.Contains(errb.String(), "left out 2 entries") || !strings.Contains(errb.String(), "work/.wh.foo") {
		t.Errorf("bb commit's stderr does not name the left-out files:\n%s", errb.String())
	}
	var res bottle.CommitResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatal(err)
	}
	if res.Stats.Reserved != 2 || len(res.Stats.ReservedPaths) != 2 {
		t.Errorf("--json stats: %+v", res.Stats)
	}
	if o := run(t, "--home", home, "commit", "--from-dir", root, "--slug", "harden-wh-cli"); !strings.Contains(o, "left out 2 entries whose names are reserved") {
		t.Errorf("bb commit's summary does not count the left-out files:\n%s", o)
	}
	if d := run(t, "--home", home, "diff", "harden-wh-cli", "--live"); !strings.Contains(d, "not in any snapshot: 2 entries") || !strings.Contains(d, "work/.wh..wh..opq") {
		t.Errorf("bb diff --live:\n%s", d)
	}
	dst := filepath.Join(t.TempDir(), "out")
	run(t, "--home", home, "resume", "harden-wh-cli", "--dir", dst)
	if b, err := os.ReadFile(filepath.Join(dst, "work/foo")); err != nil || string(b) != "base" {
		t.Errorf("work/foo after resume: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dst, "work/.wh.foo")); err == nil {
		t.Errorf("work/.wh.foo came back")
	}
}
