package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// earlyImage is a one-layer image whose layer holds content.
func earlyImage(t *testing.T, content []byte) (*storedImage, []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "review-file", Size: int64(len(content)), Mode: 0o644, ModTime: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(content)
	_ = tw.Close()
	diffID, _, _ := v1.SHA256(bytes.NewReader(buf.Bytes()))
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		Config: v1.Config{Labels: map[string]string{"review": hex.EncodeToString(content[:8])}}}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cd, _, _ := v1.SHA256(bytes.NewReader(cb))
	man := &v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: int64(len(cb))}}
	return &storedImage{man: man, cfg: cfg, cfgBytes: cb}, buf.Bytes()
}

// TestEarlyLoadDaemonKeepsNothingWrong drives an early load into the
// real daemon with a layer that is not the config's (same size, other
// bytes) and with an archive cut short: the daemon must refuse both, keep
// no image of their configs, and leave the tag on the image it named.
// The early load's safety rests on this (see earlyLoad).
func TestEarlyLoadDaemonKeepsNothingWrong(t *testing.T) {
	c, err := NewClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Docker daemon is needed (CI is set): %v", err)
		}
		t.Skipf("no Docker daemon: %v", err)
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rnd := func() []byte {
		b := make([]byte, 64<<10)
		_, _ = rand.Read(b)
		return b
	}
	ref := "review-early-" + hex.EncodeToString(rnd()[:6]) + ":latest"
	var ids []string
	t.Cleanup(func() {
		for _, id := range append(ids, ref) {
			_, _ = c.ImageRemove(context.Background(), id, image.RemoveOptions{Force: true, PruneChildren: true})
		}
	})
	load := func(im *storedImage, layer []byte, planned int64) error {
		ids = append(ids, im.man.Config.Digest.String())
		e := startEarlyLoad(ctx, c, log, planned, nil)
		_, _ = e.Write(layer)
		err := e.finish(im, ref)
		t.Logf("early load of %s: %v", im.man.Config.Digest, err)
		return err
	}
	tagged := func() string {
		ii, err := c.ImageInspect(ctx, ref)
		if err != nil {
			return ""
		}
		return ii.ID
	}
	absent := func(what string, im *storedImage) {
		t.Helper()
		if _, err := c.ImageInspect(ctx, im.man.Config.Digest.String()); err == nil {
			t.Errorf("%s: the daemon kept image %s", what, im.man.Config.Digest)
		}
	}

	good, layer := earlyImage(t, rnd())
	if err := load(good, layer, int64(len(layer))); err != nil {
		t.Fatalf("an early load of a good layer: %v", err)
	}
	if got := tagged(); got != good.man.Config.Digest.String() {
		t.Fatalf("%s is %q, want %s", ref, got, good.man.Config.Digest)
	}

	// Same size, other bytes: what was streamed is not the stored layer.
	bad, layer := earlyImage(t, rnd())
	layer[600] ^= 1
	if err := load(bad, layer, int64(len(layer))); err == nil {
		t.Error("the daemon loaded a layer whose diffID is not the config's")
	}
	absent("a layer that is not the config's", bad)

	// The layer is shorter than planned: the archive is cut.
	cut, layer := earlyImage(t, rnd())
	if err := load(cut, layer[:len(layer)-1024], int64(len(layer))); err == nil {
		t.Error("an early load of a short layer succeeded")
	}
	absent("a short layer", cut)

	// Longer than planned.
	long, layer := earlyImage(t, rnd())
	if err := load(long, layer, int64(len(layer)-1024)); err == nil {
		t.Error("an early load of a long layer succeeded")
	}
	absent("a long layer", long)

	if got := tagged(); got != good.man.Config.Digest.String() {
		t.Errorf("after refused loads %s is %q, want %s", ref, got, good.man.Config.Digest)
	}
}
