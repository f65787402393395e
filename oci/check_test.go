package oci

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestCheckFindsAndFixes(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := Open(root)
	cfg, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte(`{"config":1}`))
	man := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":12,"digest":"` + cfg.Digest.String() + `"},"layers":[]}`)
	md, _ := s.PutBytes(ctx, types.OCIManifestSchema1, man)
	if err := s.Tag(ctx, "good", md); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 || rep.Tags != 1 || rep.Blobs != 2 {
		t.Fatalf("clean store: %+v", rep)
	}
	// Damage: the tagged config, a loose blob, a stale temp file, a loose mode.
	loose, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte(`{"loose":1}`))
	for _, h := range []string{cfg.Digest.Hex, loose.Digest.Hex} {
		p := filepath.Join(root, "blobs", "sha256", h)
		_ = os.Chmod(p, 0o600)
		if err := os.WriteFile(p, []byte(`{"config":2}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(root, ingestDir, "blob-1")
	_ = os.WriteFile(tmp, []byte("x"), 0o600)
	old := time.Now().Add(-2 * TempGrace)
	_ = os.Chtimes(tmp, old, old)
	_ = os.Chmod(filepath.Join(root, indexFile), 0o644)

	rep, _ = s.Check(ctx, CheckOptions{})
	kinds := map[string]int{}
	for _, f := range rep.Findings {
		kinds[f.Kind]++
	}
	if kinds[FindingBlob] != 2 || kinds[FindingTemp] != 1 || kinds[FindingPerm] != 1 || rep.OK() {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	rep, _ = s.Check(ctx, CheckOptions{Fix: true})
	fixed := 0
	for _, f := range rep.Findings {
		if f.Fixed {
			fixed++
		}
	}
	if fixed != 3 {
		t.Fatalf("fixed %d, want 3 (temp, mode, loose blob): %+v", fixed, rep.Findings)
	}
	if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", cfg.Digest.Hex)); err != nil {
		t.Fatal("--fix removed a damaged blob a tag needs")
	}
	if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", loose.Digest.Hex)); err == nil {
		t.Fatal("--fix kept a damaged blob no tag needs")
	}
}
