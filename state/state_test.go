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

func TestImportedMetadataDropsHostFields(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	raw := []byte(`{"identity":"old","cwd":"/home/victim","copy_cwd":true,"backend":"dir","agent_name":"a"}`)
	if err := h.WriteImportedMetadata("imp", raw); err != nil {
		t.Fatal(err)
	}
	md, err := h.ReadMetadata("imp")
	if err != nil || md.Cwd != "" || md.Identity != "imp" || md.AgentName != "a" || md.Backend != "dir" {
		t.Fatalf("metadata = %+v, %v", md, err)
	}
	b, _ := h.RawMetadata("imp")
	if strings.Contains(string(b), "victim") || strings.Contains(string(b), "copy_cwd") {
		t.Fatalf("host fields kept: %s", b)
	}
	if kept, _ := os.ReadFile(filepath.Join(h.StateDir("imp"), ImportedMetadataFile)); string(kept) != string(raw) {
		t.Fatalf("imported bytes not kept: %s", kept)
	}
	if p, err := h.DirSource("imp"); p != "" || err != nil {
		t.Fatalf("an import recorded a dir source: %q %v", p, err)
	}
	for _, bad := range [][]byte{[]byte(`null`), []byte(`[1]`), []byte(`"x"`)} {
		if err := h.WriteImportedMetadata("imp", bad); err == nil {
			t.Errorf("%s accepted as metadata", bad)
		}
	}
}

func TestDirSource(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	if err := h.WriteDirSource("d", "relative/path"); err == nil {
		t.Fatal("relative dir source accepted")
	}
	if err := h.WriteDirSource("d", "/a\nb"); err == nil {
		t.Fatal("multi-line dir source accepted")
	}
	if err := h.WriteDirSource("d", "/srv/tree"); err != nil {
		t.Fatal(err)
	}
	if p, err := h.DirSource("d"); p != "/srv/tree" || err != nil {
		t.Fatalf("DirSource = %q, %v", p, err)
	}
	fi, err := os.Stat(filepath.Join(h.StateDir("d"), DirSourceFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("dir-source mode: %v %v", fi, err)
	}
}
