package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/internal/testing/testregistry"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// bb runs the CLI in-process and returns its standard output.
func runBB(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := cli.New()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	if err != nil {
		t.Logf("bb %s: %v\nstderr: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), err
}

func mustRunBB(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runBB(t, args...)
	if err != nil {
		t.Fatalf("bb %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// bottleDir builds a small bottle root filesystem with a multi-chunk
// random file, a hard link, a symlink and a file owned by uid 1000.
func bottleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := testimage.BuildRootfs(dir, testimage.Options{NoTar: true}); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	b := make([]byte, 700<<10)
	rand.New(rand.NewSource(42)).Read(b)
	work := filepath.Join(dir, "home/node/work")
	if err := os.MkdirAll(work, 0o750); err != nil {
		t.Fatal(err)
	}
	for p, data := range map[string][]byte{"random.bin": b, "notes.md": []byte("# agent notes\n")} {
		if err := os.WriteFile(filepath.Join(work, p), data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(work, "notes.md"), filepath.Join(work, "notes-link.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("work/random.bin", filepath.Join(dir, "home/node/latest")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.Lchown(filepath.Join(work, "notes.md"), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type pushJSON struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Sent      int64  `json:"sent"`
	Skipped   int64  `json:"skipped"`
	Mounted   int64  `json:"mounted"`
	Blobs     []struct {
		Status   string `json:"status"`
		Requests int    `json:"requests"`
	} `json:"blobs"`
	Metadata *struct {
		Digest string `json:"digest"`
	} `json:"metadata"`
}

func TestPushPullRoundTrip(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	src := bottleDir(t)
	home1, home2 := t.TempDir(), t.TempDir()
	mustRunBB(t, "--home", home1, "commit", "--from-dir", src, "--slug", "demo")
	ref := reg.Repo("bottles/demo:v1")

	var first pushJSON
	out := mustRunBB(t, "--home", home1, "push", "demo", ref, "--json", "--chunk-size", "262144")
	if err := json.Unmarshal([]byte(out), &first); err != nil {
		t.Fatalf("push --json: %v\n%s", err, out)
	}
	if first.Reference != ref || first.Metadata == nil || len(first.Blobs) != 2 {
		t.Fatalf("push result %+v", first)
	}
	chunked := false
	for _, b := range first.Blobs {
		if b.Status != "uploaded" {
			t.Fatalf("first push: blob %+v", b)
		}
		chunked = chunked || b.Requests > 1
	}
	if !chunked {
		t.Fatalf("no blob went up in chunks: %+v", first.Blobs)
	}

	// A second push skips every blob.
	var second pushJSON
	out = mustRunBB(t, "--home", home1, "push", "demo", ref, "--json")
	if err := json.Unmarshal([]byte(out), &second); err != nil {
		t.Fatal(err)
	}
	for _, b := range second.Blobs {
		if b.Status != "exists" {
			t.Fatalf("second push: blob %+v", b)
		}
	}
	if second.Digest != first.Digest || second.Skipped == 0 || second.Sent > 4096 {
		t.Fatalf("second push %+v", second)
	}

	// Pull on "another host" under a new slug.
	out = mustRunBB(t, "--home", home2, "pull", ref, "--as", "moved", "--json")
	var pulled struct {
		Slug     string `json:"slug"`
		Manifest struct {
			Digest string `json:"digest"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(out), &pulled); err != nil {
		t.Fatalf("pull --json: %v\n%s", err, out)
	}
	if pulled.Slug != "moved" || pulled.Manifest.Digest != first.Digest {
		t.Fatalf("pull result %s", out)
	}
	md, err := state.Home{Dir: home2}.ReadMetadata("moved")
	if err != nil || md == nil {
		t.Fatalf("metadata.json not restored: %v", err)
	}
	if md.Identity != "moved" || md.Backend != "dir" {
		t.Fatalf("restored metadata %+v", md)
	}
	if !(state.Home{Dir: home2}).Preserved("moved") {
		t.Fatal("no preserve marker after pull")
	}
	ins := mustRunBB(t, "--home", home2, "inspect", "moved", "--json")
	if !strings.Contains(ins, first.Digest) {
		t.Fatalf("inspect after pull does not show %s:\n%s", first.Digest, ins)
	}

	// Resume there: the same tree.
	dst := filepath.Join(t.TempDir(), "rootfs")
	mustRunBB(t, "--home", home2, "resume", "moved", "--backend", "dir", "--dir", dst)
	skip := fstree.Under(snapshot.DefaultExcludes...)
	want, err := fstree.Walk(src, skip)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fstree.Walk(dst, skip)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(want, got); len(d) > 0 {
		t.Fatalf("tree after push, pull and resume differs:\n%s", strings.Join(d, "\n"))
	}

	// Pulling the same snapshot again is fine; a different one replaces
	// the slug's current snapshot only with --force.
	mustRunBB(t, "--home", home2, "pull", ref, "--as", "moved")
	if err := os.WriteFile(filepath.Join(src, "home/node/work/notes.md"), []byte("changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	mustRunBB(t, "--home", home1, "commit", "--from-dir", src, "--slug", "demo")
	mustRunBB(t, "--home", home1, "push", "demo", ref)
	blobsBefore, _ := os.ReadDir(filepath.Join(home2, "oci", "blobs", "sha256"))
	if _, err := runBB(t, "--home", home2, "pull", ref, "--as", "moved"); err == nil || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "nothing was downloaded") {
		t.Fatalf("pull over another snapshot: %v", err)
	}
	if blobsAfter, _ := os.ReadDir(filepath.Join(home2, "oci", "blobs", "sha256")); len(blobsAfter) != len(blobsBefore) {
		t.Fatalf("a refused pull changed the store: %d blobs before, %d after", len(blobsBefore), len(blobsAfter))
	}
	mustRunBB(t, "--home", home2, "pull", ref, "--as", "moved", "--force")
	// Without --as, the slug recorded in the snapshot is used.
	out = mustRunBB(t, "--home", home2, "pull", ref)
	if !strings.Contains(out, "as demo") {
		t.Fatalf("pull without --as: %s", out)
	}
}

func TestPushWrongPasswordNamesRegistry(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{Auth: true})
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	mustRunBB(t, "--home", home, "commit", "--from-dir", src, "--slug", "sec")
	cfg := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfg)
	reg.DockerConfig(cfg, "not-the-password")
	_, err := runBB(t, "--home", home, "push", "sec", reg.Repo("sec"), "--ca-file", reg.CAFile)
	want := "unauthorized: check the credentials for " + reg.Addr + " in " + filepath.Join(cfg, "config.json") + " or docker login " + reg.Addr
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v\nwant an error saying %q", err, want)
	}
	reg.DockerConfig(cfg, "")
	mustRunBB(t, "--home", home, "push", "sec", reg.Repo("sec"), "--ca-file", reg.CAFile)
	home2 := t.TempDir()
	out := mustRunBB(t, "--home", home2, "pull", reg.Repo("sec"), "--ca-file", reg.CAFile)
	if !strings.Contains(out, "as sec") {
		t.Fatalf("pull: %s", out)
	}
}
