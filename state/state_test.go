package state

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecordCommitFormat(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	if err := h.RecordCommit("dev-abc12", "bot-bottle-committed-dev-abc12:latest"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(h.Dir, "state/dev-abc12/committed-image"))
	if string(b) != "bot-bottle-committed-dev-abc12:latest\n" {
		t.Fatalf("committed-image = %q", b)
	}
	if got, _ := h.CommittedImage("dev-abc12"); got != "bot-bottle-committed-dev-abc12:latest" {
		t.Fatalf("CommittedImage = %q", got)
	}
	if !h.Preserved("dev-abc12") {
		t.Fatal("preserve marker missing")
	}
	if err := h.RecordCommit("dev-abc12", "a\nb"); err == nil {
		t.Fatal("multi-line reference accepted")
	}
	ents, _ := os.ReadDir(h.StateDir("dev-abc12"))
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}
}

func TestMetadataKeepsUnknownFieldsAndSetsIdentity(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	raw := []byte(`{"identity":"old","agent_name":"dev","cwd":"/w","copy_cwd":true,"started_at":"t","backend":"smolmachines","extra":42}`)
	if err := h.WriteRawMetadata("new", raw); err != nil {
		t.Fatal(err)
	}
	md, err := h.ReadMetadata("new")
	if err != nil || md.Identity != "new" || md.Backend != "smolmachines" || !md.CopyCwd {
		t.Fatalf("metadata = %+v, %v", md, err)
	}
	b, _ := h.RawMetadata("new")
	if !strings.Contains(string(b), `"extra": 42`) {
		t.Fatalf("unknown field lost: %s", b)
	}
	if md, err := h.ReadMetadata("absent"); md != nil || err != nil {
		t.Fatalf("absent metadata: %v %v", md, err)
	}
}

func TestValidSlug(t *testing.T) {
	for _, ok := range []string{"dev-abc12", "a", "x.y_z"} {
		if ValidSlug(ok) != nil {
			t.Errorf("%q refused", ok)
		}
	}
	for _, bad := range []string{"", "../x", "a/b", "Dev", "-a", "a..b", strings.Repeat("a", 101)} {
		if ValidSlug(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
