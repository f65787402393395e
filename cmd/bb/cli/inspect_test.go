package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestInspectArtifact inspects the bottle metadata artifact, an OCI
// artifact whose one layer has no diff_id: it used to panic.
func TestInspectArtifact(t *testing.T) {
	home := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustBB(t, home, nil, "commit", "--from-dir", src, "--slug", "verify-inspect")
	b, err := os.ReadFile(filepath.Join(home, "oci", "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	var art string
	for _, d := range idx.Manifests {
		if d.ArtifactType == snapshot.MetadataArtifactType {
			art = d.Digest.String()
		}
	}
	if art == "" {
		t.Fatalf("no metadata artifact in the store: %s", b)
	}
	out := mustBB(t, home, nil, "inspect", art)
	if !strings.Contains(out, "none in the config") || !strings.Contains(out, string(snapshot.MetadataMediaType)) {
		t.Fatalf("inspect of an artifact:\n%s", out)
	}
	mustBB(t, home, nil, "inspect", art, "--json")
	if out := mustBB(t, home, nil, "inspect", "verify-inspect"); !strings.Contains(out, "diffID sha256:") {
		t.Fatalf("inspect of the snapshot:\n%s", out)
	}
}
