package oci

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func sha512Of(b []byte) v1.Hash {
	s := sha512.Sum512(b)
	return v1.Hash{Algorithm: "sha512", Hex: hex.EncodeToString(s[:])}
}

func TestSHA512Blobs(t *testing.T) {
	ctx := t.Context()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a blob addressed by sha512")
	h := sha512Of(data)
	// Ingest hashes with the algorithm asked for.
	if got, _, err := s.Ingest(ctx, bytes.NewReader(data), h, int64(len(data))); err != nil || got != h {
		t.Fatalf("Ingest = %s, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "blobs", "sha512", h.Hex)); err != nil {
		t.Fatalf("not under blobs/sha512: %v", err)
	}
	// A writer started without knowing the digest rehashes at Commit.
	w, err := s.NewWriter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte("written first, digest known at the end")
	_, _ = w.Write(other)
	oh := sha512Of(other)
	if got, _, err := w.Commit(ctx, oh, -1); err != nil || got != oh {
		t.Fatalf("Commit = %s, %v", got, err)
	}
	// A wrong sha512 is a mismatch; other algorithms are refused.
	var dm *DigestMismatchError
	if _, _, err := s.Ingest(ctx, bytes.NewReader(data), sha512Of([]byte("else")), -1); !errors.As(err, &dm) {
		t.Fatalf("wrong digest: %v", err)
	}
	for _, bad := range []v1.Hash{{Algorithm: "sha384", Hex: h.Hex[:96]}, {Algorithm: "sha512", Hex: h.Hex[:64]}, {Algorithm: "md5", Hex: h.Hex[:32]}} {
		if ValidHash(bad) == nil {
			t.Errorf("ValidHash(%s) accepted", bad)
		}
	}
	// GC walks blobs/sha512 like blobs/sha256: referenced blobs stay,
	// unreferenced ones past the grace period go.
	cfg, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte("{}"))
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg,
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Digest: h, Size: int64(len(data))}}}
	mb, _ := json.Marshal(m)
	md, _ := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err := s.Tag(ctx, "keep", md); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * GCGrace)
	for _, p := range []string{s.BlobPath(h), s.BlobPath(oh)} {
		_ = os.Chtimes(p, old, old)
	}
	removed, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != oh {
		t.Errorf("GC removed %v, want only %s", removed, oh)
	}
	// Delete refuses what a tag reaches, then removes it once untagged.
	var inUse *InUseError
	if _, err := s.Delete(ctx, nil, []v1.Hash{h}); !errors.As(err, &inUse) || len(inUse.By) != 1 || inUse.By[0] != "keep" {
		t.Fatalf("Delete of a used blob: %v", err)
	}
	if _, err := s.Stat(ctx, h); err != nil {
		t.Fatalf("refused Delete removed the blob: %v", err)
	}
	if _, err := s.Delete(ctx, func(idx *v1.IndexManifest) error { idx.Manifests = nil; return nil }, []v1.Hash{h}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, h); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Delete: %v", err)
	}
}
