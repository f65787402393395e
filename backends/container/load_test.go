package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// loadLog is what the stand-in's image loads recorded
// (BB_STANDIN_CONTAINER_LOAD_LOG): the bytes each extracted, the blobs
// each hashed and those it took from its image store.
type loadLog struct {
	extracted []int64
	hashed    map[string]int64
	reused    map[string]bool
}

// readLoadLog reads the log at p and empties it.
func readLoadLog(t *testing.T, p string) loadLog {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l := loadLog{hashed: map[string]int64{}, reused: map[string]bool{}}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "extracted":
			n, _ := strconv.ParseInt(f[1], 10, 64)
			l.extracted = append(l.extracted, n)
		case len(f) == 3 && f[0] == "hashed":
			n, _ := strconv.ParseInt(f[2], 10, 64)
			l.hashed[f[1]] = n
		case len(f) == 2 && f[0] == "reused":
			l.reused[f[1]] = true
		}
	}
	return l
}

// twoCommits starts a bottle, commits it, adds 2 MiB of new files and
// commits again (incrementally); the log holds only the second
// commit's loads, and it returns both manifests.
func twoCommits(t *testing.T, h *backendtest.ContainerHarness, e *backendtest.Env, slug, logPath string, between func(first *v1.Manifest)) (first, second *v1.Manifest, digest v1.Hash, err error) {
	t.Helper()
	ctx := context.Background()
	backendtest.StartBottle(t, h, e, slug, testimage.Options{Findutils: true})
	time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
	res1, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatalf("first commit: %v", err)
	}
	first = manifestOf(t, e, res1.Snapshot.Manifest.Digest)
	readLoadLog(t, logPath)
	big := make([]byte, 2<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(t, slug, bytes.NewReader(big), "sh", "-c", "mkdir -p /home/node/work2 && cat > /home/node/work2/new.bin && echo hi > /home/node/work2/note"); err != nil {
		t.Fatal(err)
	}
	if between != nil {
		between(first)
	}
	time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
	res2, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		return first, nil, v1.Hash{}, err
	}
	if res2.Incremental == nil || res2.Incremental.Depth != 2 {
		t.Fatalf("second commit: incremental %+v, want depth 2", res2.Incremental)
	}
	return first, manifestOf(t, e, res2.Snapshot.Manifest.Digest), res2.Snapshot.Manifest.Digest, nil
}

func manifestOf(t *testing.T, e *backendtest.Env, h v1.Hash) *v1.Manifest {
	t.Helper()
	img, err := e.Store.Image(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestLoadOnlyNewLayers: the second commit's load hands container only
// the manifest, the config and the new layer; container takes the first
// snapshot's layer from its image store, the image gets bb's name, and
// a resume boots the exact tree.
func TestLoadOnlyNewLayers(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "load.log")
	t.Setenv("BB_STANDIN_CONTAINER_LOAD_LOG", logPath)
	e := backendtest.NewEnv(t, h)
	slug := backendtest.NewSlug("cpull")
	first, second, digest, err := twoCommits(t, h, e, slug, logPath, nil)
	if err != nil {
		t.Fatalf("second commit: %v", err)
	}
	if len(first.Layers) != 1 || len(second.Layers) != 2 || second.Layers[0].Digest != first.Layers[0].Digest {
		t.Fatalf("layers: first %v, second %v", first.Layers, second.Layers)
	}
	l := readLoadLog(t, logPath)
	base, added := second.Layers[0], second.Layers[1]
	if len(l.extracted) != 1 {
		t.Fatalf("%d loads, want 1", len(l.extracted))
	}
	if _, ok := l.hashed[base.Digest.String()]; ok || !l.reused[base.Digest.String()] {
		t.Errorf("container read the base layer from the archive (hashed %v, reused %v)", l.hashed, l.reused)
	}
	if l.hashed[added.Digest.String()] != added.Size || len(l.hashed) != 3 {
		t.Errorf("hashed %v, want the manifest, the config and %s", l.hashed, added.Digest)
	}
	if max := added.Size + second.Config.Size + 64<<10; l.extracted[0] > max {
		t.Errorf("the archive held %d bytes, more than the new layer, config and manifest (%d)", l.extracted[0], max)
	}
	checkNamed(t, slug, digest)

	before := backendtest.Walk(t, h, slug)
	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	after := backendtest.Walk(t, h, slug)
	if d := fstree.Diff(before, after); len(d) > 0 {
		t.Fatalf("tree differs after resume:\n%s", strings.Join(d, "\n"))
	}
}

// TestLoadLostBaseLayer: when container's store lost a layer of the
// snapshot it has under the name, the load of only the new layers fails
// with missingContent and bb loads the whole snapshot; nothing is lost.
func TestLoadLostBaseLayer(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	logPath := filepath.Join(t.TempDir(), "load.log")
	t.Setenv("BB_STANDIN_CONTAINER_LOAD_LOG", logPath)
	e := backendtest.NewEnv(t, h)
	slug := backendtest.NewSlug("cpull")
	_, second, digest, err := twoCommits(t, h, e, slug, logPath, func(first *v1.Manifest) {
		blob := filepath.Join(h.Root, "container", "images", "blobs", "sha256", first.Layers[0].Digest.Hex)
		if err := os.Remove(blob); err != nil {
			t.Fatal(err)
		}
	})
	if err != nil {
		t.Fatalf("second commit: %v", err)
	}
	l := readLoadLog(t, logPath)
	base := second.Layers[0]
	if len(l.extracted) != 2 || l.hashed[base.Digest.String()] != base.Size {
		t.Fatalf("want a load of the new layers, then of the whole snapshot: %d loads, hashed %v", len(l.extracted), l.hashed)
	}
	checkNamed(t, slug, digest)
	before := backendtest.Walk(t, h, slug)
	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if d := fstree.Diff(before, backendtest.Walk(t, h, slug)); len(d) > 0 {
		t.Fatalf("tree differs after resume:\n%s", strings.Join(d, "\n"))
	}
}

// checkNamed makes sure container has the manifest h under bb's name
// for slug.
func checkNamed(t *testing.T, slug string, h v1.Hash) {
	t.Helper()
	var res []struct {
		Variants []struct {
			Digest string `json:"digest"`
		} `json:"variants"`
	}
	out := mustCLI(t, "image", "inspect", state.FullCommittedRef(slug))
	if err := json.Unmarshal(out, &res); err != nil || len(res) != 1 || len(res[0].Variants) != 1 || res[0].Variants[0].Digest != h.String() {
		t.Fatalf("container image inspect %s: %s (%v), want %s", state.FullCommittedRef(slug), out, err, h)
	}
}

// TestLostBlob: only a failure for want of a layer bb left out of the
// archive sends bb to a load of the whole snapshot.
func TestLostBlob(t *testing.T) {
	held := map[v1.Hash]bool{{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}: true}
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{`container image load -i f: exit status 1: Error: unknown: "missingContent(\"sha256:` + strings.Repeat("cd", 32) + `\")"`, true},
		{`Error: internalError: "cannot fetch content with digest sha256:` + strings.Repeat("ab", 32) + `"`, true},
		{`Error: internalError: "digest mismatch expected sha256:` + strings.Repeat("ef", 32) + `"`, false},
		{`Error: internalError: "failed to import image"`, false},
	} {
		if got := container.LostBlob(errors.New(c.msg), held); got != c.want {
			t.Errorf("lostBlob(%s) = %v, want %v", c.msg, got, c.want)
		}
	}
}
