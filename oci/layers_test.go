package oci_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// putImage stores a one-layer image of tar and tags it name.
func putImage(t *testing.T, s *oci.Store, name string, tar []byte) (layerDesc v1.Descriptor, diffID v1.Hash) {
	t.Helper()
	ctx := context.Background()
	l, err := layer.Write(ctx, s, bytes.NewReader(tar), layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ = l.DiffID()
	cb, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}})
	cd, err := s.PutBytes(ctx, types.OCIConfigJSON, cb)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: []v1.Descriptor{l.Descriptor()}})
	md, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, name, md); err != nil {
		t.Fatal(err)
	}
	return l.Descriptor(), diffID
}

// age makes blob h look written long ago, for GC.
func age(t *testing.T, s *oci.Store, h v1.Hash) {
	t.Helper()
	old := time.Now().Add(-2 * oci.GCGrace)
	if err := os.Chtimes(s.BlobPath(h), old, old); err != nil {
		t.Fatal(err)
	}
}

// TestLayerByDiffIDFromImages: another process (a second Open) finds a
// layer through the images the store holds, and not once no image holds
// it and GC removed it.
func TestLayerByDiffIDFromImages(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	desc, diffID := putImage(t, s, "img", bytes.Repeat([]byte("a"), 4096))

	other, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	got, err := other.LayerByDiffID(ctx, diffID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != desc.Digest || got.Size != desc.Size || got.MediaType != desc.MediaType || got.DiffID != diffID {
		t.Errorf("LayerByDiffID = %+v, want %+v of %s", got, desc, diffID)
	}
	if got.TarSize != 0 {
		t.Errorf("TarSize %d from an image: the store cannot know it", got.TarSize)
	}

	if err := s.Untag(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	age(t, s, desc.Digest)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*oci.Store{s, other} {
		if l, err := st.LayerByDiffID(ctx, diffID); !errors.Is(err, oci.ErrNotFound) {
			t.Errorf("after GC: LayerByDiffID = %+v, %v; want ErrNotFound", l, err)
		}
	}

	// The same image again (an import of the removed snapshot): found.
	putImage(t, s, "img", bytes.Repeat([]byte("a"), 4096))
	if got, err := other.LayerByDiffID(ctx, diffID); err != nil || got.Digest != desc.Digest {
		t.Errorf("after the image came back: LayerByDiffID = %+v, %v", got, err)
	}
}

// TestLayerByDiffIDKeepsTheLayer: a layer found for a commit that builds
// on it stays through a GC until that commit tags its image, even when
// no image references it any more.
func TestLayerByDiffIDKeepsTheLayer(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	desc, diffID := putImage(t, s, "img", bytes.Repeat([]byte("b"), 4096))
	age(t, s, desc.Digest)
	if _, err := s.LayerByDiffID(ctx, diffID); err != nil {
		t.Fatal(err)
	}
	if err := s.Untag(ctx, "img"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, desc.Digest); err != nil {
		t.Errorf("GC removed a layer LayerByDiffID just handed out: %v", err)
	}
}

// TestGCRemovesLegacyLayerIndex: the side file of older versions goes
// at GC and is not a problem for Check.
func TestGCRemovesLegacyLayerIndex(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(root, "bb-layers.json")
	if err := os.WriteFile(legacy, []byte(`{"layers":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, oci.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("Check reports the legacy layer index: %+v", rep.Findings)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bb-layers.json still there after GC: %v", err)
	}
}

// TestManifestVerifies: Manifest and Config refuse a damaged blob and a
// descriptor whose size disagrees.
func TestManifestVerifies(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	putImage(t, s, "img", []byte("c"))
	md, err := s.Resolve(ctx, "img")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.Manifest(ctx, md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Config(ctx, m.Config.Digest); err != nil {
		t.Fatal(err)
	}
	short := md
	short.Size--
	if _, err := s.Manifest(ctx, short); err == nil {
		t.Error("Manifest accepted a descriptor of the wrong size")
	}
	p := s.BlobPath(m.Config.Digest)
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if err := os.WriteFile(p, bytes.Replace(b, []byte("linux"), []byte("LINUX"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Config(ctx, m.Config.Digest); err == nil {
		t.Error("Config accepted a blob that does not hash to its digest")
	}
}

// TestLayerByDiffIDPrefersGzip: a zstd copy of a layer (made for a push
// or an export) written after the gzip one is not what the next commit
// builds on.
func TestLayerByDiffIDPrefersGzip(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tar := bytes.Repeat([]byte("z"), 8192)
	gz, diffID := putImage(t, s, "gz", tar)
	zl, err := layer.Write(ctx, s, bytes.NewReader(tar), layer.Options{Compression: layer.Zstd})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := zl.DiffID(); d != diffID {
		t.Fatalf("zstd copy has diffID %s, want %s", d, diffID)
	}
	got, err := s.LayerByDiffID(ctx, diffID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != gz.Digest || got.MediaType != types.OCILayer {
		t.Fatalf("LayerByDiffID = %s (%s), want the gzip blob %s", got.Digest, got.MediaType, gz.Digest)
	}
}
