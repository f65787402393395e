package oci_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// TestBlobImage: a snapshot that is built but not yet tagged (a commit
// before it is published) is readable as an image.
func TestBlobImage(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := snapshot.Build(ctx, s, snapshot.Request{Slug: "blob", Source: &dir.Source{Dir: d}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Image(ctx, res.Manifest.Digest); err == nil {
		t.Log("Store.Image reads untagged manifests now; BlobImage may be redundant")
	}
	img, err := s.Image(ctx, res.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	if dg, _ := img.Digest(); dg != res.Manifest.Digest {
		t.Errorf("digest %s, want %s", dg, res.Manifest.Digest)
	}
	if _, err := s.Image(ctx, res.Layer.Digest); err == nil {
		t.Error("a layer blob was accepted as a manifest")
	}
}
