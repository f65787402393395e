package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestIngestVerifies(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("hello blob")
	h, _, _ := v1.SHA256(bytes.NewReader(data))
	if _, _, err := s.Ingest(ctx, bytes.NewReader(data), h, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Stat(ctx, h); err != nil || n != int64(len(data)) {
		t.Fatalf("Stat = %d, %v", n, err)
	}
	wrong, _, _ := v1.SHA256(strings.NewReader("other"))
	var dm *DigestMismatchError
	if _, _, err := s.Ingest(ctx, bytes.NewReader(data), wrong, int64(len(data))); !errors.As(err, &dm) {
		t.Fatalf("wrong digest: err = %v", err)
	}
	other := []byte("a longer blob than declared")
	oh, _, _ := v1.SHA256(bytes.NewReader(other))
	if _, _, err := s.Ingest(ctx, bytes.NewReader(other), oh, 3); !errors.As(err, &dm) {
		t.Fatalf("wrong size: err = %v", err)
	}
	if _, err := s.Stat(ctx, oh); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused blob landed in the store: %v", err)
	}
	if files := ingestFiles(t, s); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
}

func TestWriterCloseDiscards(t *testing.T) {
	s, _ := Open(t.TempDir())
	w, err := s.NewWriter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	w.Close()
	if files := ingestFiles(t, s); len(files) != 0 {
		t.Fatalf("temp files left: %v", files)
	}
}

func TestConcurrentTagsAreNotLost(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := Open(root)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s2, err := Open(root) // as another process would
			if err != nil {
				t.Error(err)
				return
			}
			d, err := s2.PutBytes(ctx, types.OCIManifestSchema1, []byte(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i)))
			if err != nil {
				t.Error(err)
				return
			}
			if err := s2.Tag(ctx, fmt.Sprintf("t%d", i), d); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	idx, err := s.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 20 {
		t.Fatalf("index has %d entries, want 20", len(idx.Manifests))
	}
	if _, err := s.Resolve(ctx, "t7"); err != nil {
		t.Fatal(err)
	}
}

func TestTagRejectsBadNames(t *testing.T) {
	s, _ := Open(t.TempDir())
	d, _ := s.PutBytes(context.Background(), types.OCIManifestSchema1, []byte("{}"))
	for _, bad := range []string{"", "../x", "a/b", "a:b", strings.Repeat("x", 200)} {
		if err := s.Tag(context.Background(), bad, d); err == nil {
			t.Errorf("tag %q accepted", bad)
		}
	}
}

func TestDiscardOnlyUnreferenced(t *testing.T) {
	ctx := context.Background()
	s, _ := Open(t.TempDir())
	kept, _ := s.PutBytes(ctx, types.OCIManifestSchema1, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","size":0,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},"layers":[]}`))
	if err := s.Tag(ctx, "keep", kept); err != nil {
		t.Fatal(err)
	}
	loose, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte(`{"loose":true}`))
	if err := s.Discard(ctx, []v1.Hash{kept.Digest, loose.Digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, kept.Digest); err != nil {
		t.Fatalf("referenced blob removed: %v", err)
	}
	if _, err := s.Stat(ctx, loose.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unreferenced blob kept: %v", err)
	}
}

// ingestFiles lists the temporary files now in the store.
func ingestFiles(t *testing.T, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.root, ingestDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}
