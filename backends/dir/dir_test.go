package dir_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// bottleTree builds a test rootfs with the shapes the issue lists.
func bottleTree(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := testimage.BuildRootfs(root, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "home/node/work/a/b/c"), 0o755))
	must(os.WriteFile(filepath.Join(root, "home/node/work/a/b/c/deep.txt"), []byte("deep\n"), 0o640))
	big := make([]byte, 8<<20)
	rand.Read(big)
	must(os.WriteFile(filepath.Join(root, "home/node/work/big.bin"), big, 0o644))
	must(os.Symlink("a/b/c/deep.txt", filepath.Join(root, "home/node/work/link")))
	must(os.Link(filepath.Join(root, "home/node/work/big.bin"), filepath.Join(root, "home/node/work/big.hard")))
	must(os.WriteFile(filepath.Join(root, "home/node/work/suid"), []byte("#!/bin/sh\n"), 0o755))
	if os.Geteuid() == 0 {
		must(os.Chown(filepath.Join(root, "home/node/work/suid"), 1000, 1000))
	}
	must(os.Chmod(filepath.Join(root, "home/node/work/suid"), 0o755|os.ModeSetuid))
	must(os.MkdirAll(filepath.Join(root, "home/node/work/empty"), 0o700))
	must(os.WriteFile(filepath.Join(root, "tmp/scratch"), []byte("gone after commit"), 0o644))
	must(os.Remove(filepath.Join(root, "etc/base-file")))
	return root
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	c := cli.New()
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errb)
	if err := c.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bb %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

var excluded = fstree.Under("proc", "sys", "dev", "run", "tmp", "var/tmp", "etc/hosts", "etc/hostname", "etc/resolv.conf")

func TestCommitResumeRoundTrip(t *testing.T) {
	root := bottleTree(t)
	home := t.TempDir()
	run(t, "--home", home, "commit", "--from-dir", root, "--slug", "demo")
	before, err := fstree.Walk(root, excluded)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	run(t, "--home", home, "resume", "demo", "--dir", out)
	after, err := fstree.Walk(out, excluded)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(before, after); len(d) > 0 {
		t.Fatalf("tree differs after resume:\n%v", d)
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		fi, err := os.Stat(filepath.Join(out, d))
		if err != nil || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
			t.Errorf("%s after resume: %v %v", d, fi, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "tmp/scratch")); err == nil {
		t.Error("tmp contents were snapshotted")
	}
	h := state.Home{Dir: home}
	if !h.Preserved("demo") {
		t.Error("preserve marker missing")
	}
}

func TestStoredImageIsValidAndReproducible(t *testing.T) {
	ctx := context.Background()
	root := bottleTree(t)
	home := t.TempDir()
	store := filepath.Join(home, "oci")
	h := state.Home{Dir: home}
	s, err := oci.Open(store)
	if err != nil {
		t.Fatal(err)
	}
	rt := &dir.Runtime{Home: h}
	if err := rt.Register("demo", root); err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: h, Store: s, Runtimes: map[string]bottle.Runtime{bottle.Dir: rt}}
	r1, err := m.Commit(ctx, "demo", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// --full: the second commit would otherwise be an (empty) layer on the first
	r2, err := m.Commit(ctx, "demo", bottle.CommitOptions{Prepare: bottle.PrepareOptions{Full: true}})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Layer.DiffID != r2.Layer.DiffID || r1.Layer.Digest != r2.Layer.Digest {
		t.Errorf("unchanged directory gave different layers: %v / %v", r1.Layer, r2.Layer)
	}
	img, err := s.Image(ctx, r2.Snapshot.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatalf("validate.Image: %v", err)
	}
	// Recompute digest and diffID from the stored file.
	f, err := s.Blob(ctx, r2.Layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dh, th := sha256.New(), sha256.New()
	zr, err := gzip.NewReader(io.TeeReader(f, dh))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(th, zr); err != nil {
		t.Fatal(err)
	}
	io.Copy(dh, f)
	if got := "sha256:" + hex.EncodeToString(dh.Sum(nil)); got != r2.Layer.Digest.String() {
		t.Errorf("blob sha256 %s, recorded %s", got, r2.Layer.Digest)
	}
	if got := "sha256:" + hex.EncodeToString(th.Sum(nil)); got != r2.Layer.DiffID.String() {
		t.Errorf("tar sha256 %s, recorded diffID %s", got, r2.Layer.DiffID)
	}
	// Independent readers.
	if _, err := exec.LookPath("skopeo"); err == nil {
		if out, err := exec.Command("skopeo", "inspect", "oci:"+store+":demo").CombinedOutput(); err != nil {
			t.Errorf("skopeo inspect: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("skopeo not installed")
	}
	if _, err := exec.LookPath("umoci"); err == nil {
		bundle := filepath.Join(t.TempDir(), "bundle")
		args := []string{"unpack", "--image", store + ":demo", bundle}
		if os.Geteuid() != 0 {
			args = []string{"unpack", "--rootless", "--image", store + ":demo", bundle}
		}
		if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
			t.Errorf("umoci unpack: %v\n%s", err, out)
		} else if _, err := os.Stat(filepath.Join(bundle, "rootfs/home/node/work/a/b/c/deep.txt")); err != nil {
			t.Errorf("umoci bundle lacks a file: %v", err)
		}
	} else if os.Getenv("CI") != "" {
		t.Error("umoci not installed")
	}
	if files := storetest.IngestFiles(t, s); len(files) != 0 {
		t.Errorf("temp files left: %v", files)
	}
}
