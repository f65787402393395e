package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestInspectEscapesControlCharacters inspects an image whose manifest
// annotations and config (from an archive or a registry: anyone's)
// hold terminal escape sequences: bb inspect must not hand them to the
// terminal.
func TestInspectEscapesControlCharacters(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustBB(t, home, nil, "commit", "--from-dir", src, "--slug", "redteam-esc")
	s, err := oci.Open(filepath.Join(home, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := s.Resolve(ctx, "redteam-esc")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.ReadBlob(ctx, desc.Digest, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	craw, err := s.ReadBlob(ctx, m.Config.Digest, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(craw, &cfg); err != nil {
		t.Fatal(err)
	}
	const esc = "\x1b]0;owned\x07\x1b[2J\r"
	cfg.Config.User = "u" + esc
	cfg.Config.WorkingDir = "/w" + esc
	cfg.Config.Env = append(cfg.Config.Env, "X="+esc)
	cfg.OS = "linux" + esc
	cb, _ := json.Marshal(cfg)
	cd, err := s.PutBytes(ctx, types.OCIConfigJSON, cb)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = cd
	m.Annotations = map[string]string{"k" + esc: "v" + esc}
	for i := range m.Layers {
		m.Layers[i].MediaType = types.MediaType("x" + esc)
	}
	mb, _ := json.Marshal(m)
	md, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		t.Fatal(err)
	}
	out := mustBB(t, home, nil, "inspect", md.Digest.String())
	if strings.ContainsAny(out, "\x1b\x07\r") {
		t.Fatalf("bb inspect printed control characters from the image:\n%q", out)
	}
	if !strings.Contains(out, `\x1b]0;owned`) {
		t.Fatalf("bb inspect hid the escaped value instead of showing it:\n%q", out)
	}
}

// TestListEscapesControlCharacters lists a bottle whose metadata.json
// (restored by an import or a pull: anyone's) names a backend made of
// terminal escape sequences.
func TestListEscapesControlCharacters(t *testing.T) {
	home := t.TempDir()
	dir := filepath.Join(home, "state", "redteam-list")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	md := `{"identity":"redteam-list","backend":"\u001b]0;owned\u0007\u001b[2J"}`
	if err := os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(md), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "committed-image"), []byte("sha256:0000000000000000000000000000000000000000000000000000000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustBB(t, home, nil, "list")
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("bb list printed control characters from metadata.json:\n%q", out)
	}
	if !strings.Contains(out, `\x1b]0;owned`) {
		t.Fatalf("bb list hid the escaped value instead of showing it:\n%q", out)
	}
}
