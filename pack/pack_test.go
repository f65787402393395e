package pack_test

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/packserve"
	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
)

var standins string

func TestMain(m *testing.M) {
	dir, cleanup, err := backendtest.BuildStandins()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standins = dir
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// setup gives the test the smolvm stand-in on PATH and a store.
func setup(t *testing.T) *oci.Store {
	t.Setenv(standin.EnvRoot, t.TempDir())
	t.Setenv("PATH", standins+string(os.PathListSeparator)+os.Getenv("PATH"))
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// build snapshots a small directory into s; publish tags it as slug.
func build(t *testing.T, s *oci.Store, slug, content string, publish bool) v1.Descriptor {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "file"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Build(context.Background(), s, snapshot.Request{Slug: slug, Source: &dir.Source{Dir: d}})
	if err != nil {
		t.Fatal(err)
	}
	if publish {
		if err := snapshot.Publish(context.Background(), s, res, -1); err != nil {
			t.Fatal(err)
		}
	}
	return res.Manifest
}

// packedRef reads the image reference the smolvm stand-in recorded in an
// artifact.
func packedRef(t *testing.T, artifact string) string {
	t.Helper()
	f, err := os.Open(artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	br.ReadString('\n')
	line, _ := br.ReadString('\n')
	var m struct{ Image string }
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("artifact header: %v", err)
	}
	return m.Image
}

// artifactNames lists the paths of the root filesystem in the smolvm
// stand-in's artifact (two header lines, then a zstd tar).
func artifactNames(t *testing.T, artifact string) map[string]bool {
	t.Helper()
	f, err := os.Open(artifact)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	br.ReadString('\n')
	br.ReadString('\n')
	zr, err := zstd.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out := map[string]bool{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[strings.Trim(h.Name, "/")] = true
	}
}

func opts(serve pack.ServeFunc) pack.Options {
	return pack.Options{Serve: serve}
}

func TestPackServedTag(t *testing.T) {
	s := setup(t)
	desc := build(t, s, "demo", "v1", true)
	out := filepath.Join(t.TempDir(), "state", "committed-smolmachine")
	art, err := pack.Pack(context.Background(), s, desc, "demo", out, opts(packserve.Serve))
	if err != nil {
		t.Fatal(err)
	}
	if art != out+".smolmachine" || !filepath.IsAbs(art) {
		t.Errorf("artifact %q", art)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode()&0o111 == 0 {
		t.Errorf("launcher: %v %v", fi, err)
	}
	if ref := packedRef(t, art); !strings.HasPrefix(ref, "localhost:") || !strings.HasSuffix(ref, "/demo:latest") {
		t.Errorf("smolvm pulled %q, want localhost:PORT/demo:latest", ref)
	}
}

// TestPackUnpublished: during a commit the store's tag still names the
// previous snapshot, so the new one is pulled by digest.
func TestPackUnpublished(t *testing.T) {
	s := setup(t)
	build(t, s, "demo", "old", true)
	desc := build(t, s, "demo", "new", false)
	out := filepath.Join(t.TempDir(), "committed-smolmachine")
	art, err := pack.Pack(context.Background(), s, desc, "demo", out, opts(packserve.Serve))
	if err != nil {
		t.Fatal(err)
	}
	if ref := packedRef(t, art); !strings.HasSuffix(ref, "/demo@"+desc.Digest.String()) {
		t.Errorf("smolvm pulled %q, want the new snapshot by digest", ref)
	}
}

func TestPackFailureKeepsPrevious(t *testing.T) {
	s := setup(t)
	desc := build(t, s, "demo", "v1", true)
	out := filepath.Join(t.TempDir(), "committed-smolmachine")
	os.WriteFile(out, []byte("old launcher"), 0o755)
	os.WriteFile(out+".smolmachine", []byte("old artifact"), 0o644)
	_, err := pack.Pack(context.Background(), s, desc, "demo", out, opts(packserve.NoBlobs))
	var pe *pack.Error
	if !errors.As(err, &pe) || !strings.Contains(pe.Stderr, "failed to pull image") {
		t.Fatalf("err = %v; want a pack.Error with smolvm's stderr", err)
	}
	if b, _ := os.ReadFile(out + ".smolmachine"); string(b) != "old artifact" {
		t.Errorf("previous artifact changed: %q", b)
	}
	if b, _ := os.ReadFile(out); string(b) != "old launcher" {
		t.Errorf("previous launcher changed: %q", b)
	}
	if left, _ := filepath.Glob(out + ".bb-pack*"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestPackConfigErrors(t *testing.T) {
	s := setup(t)
	desc := build(t, s, "demo", "v1", true)
	out := filepath.Join(t.TempDir(), "out")
	if _, err := pack.Pack(context.Background(), s, desc, "demo", out, pack.Options{}); err == nil || !strings.Contains(err.Error(), "registry") {
		t.Errorf("no Serve: %v", err)
	}
	o := opts(packserve.Serve)
	o.Binary = "smolvm-not-installed"
	if _, err := pack.Pack(context.Background(), s, desc, "demo", out, o); err == nil || !strings.Contains(err.Error(), "PATH") {
		t.Errorf("missing smolvm: %v", err)
	}
}
