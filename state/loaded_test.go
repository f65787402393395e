package state

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadedRecord(t *testing.T) {
	h := Home{Dir: t.TempDir()}
	if rec, cur, err := h.LoadedRecord("s"); rec != nil || cur || err != nil {
		t.Fatalf("no record: %+v %v %v", rec, cur, err)
	}
	if err := h.RecordLoad("s", "bot-bottle-committed-s:latest", "sha256:aa", ""); err != nil {
		t.Fatal(err)
	}
	rec, cur, err := h.LoadedRecord("s")
	if err != nil || !cur || rec.Digest != "sha256:aa" || rec.Ref != "bot-bottle-committed-s:latest" {
		t.Fatalf("after RecordLoad: %+v %v %v", rec, cur, err)
	}
	p := filepath.Join(h.StateDir("s"), LoadedFile)
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", p, fi, err)
	}
	// bb doctor knows the record is private.
	_ = os.Chmod(p, 0o644)
	if fs, err := h.Check(true); err != nil || len(fs) != 1 || fs[0].Path != p || !fs[0].Fixed {
		t.Fatalf("Check: %+v %v", fs, err)
	}
	// Another tool writes committed-image again, same content: no longer current.
	ci := filepath.Join(h.StateDir("s"), CommittedImageFile)
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(ci, later, later); err != nil {
		t.Fatal(err)
	}
	if rec, cur, err := h.LoadedRecord("s"); err != nil || cur || rec == nil {
		t.Fatalf("after another write: %+v %v %v", rec, cur, err)
	}
	// Another reference, same size and time.
	if err := h.RecordLoad("s", "bot-bottle-committed-s:latest", "sha256:aa", ""); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(ci)
	if err := os.WriteFile(ci, []byte("bot-bottle-committed-s:latesT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Chtimes(ci, fi.ModTime(), fi.ModTime())
	if _, cur, err := h.LoadedRecord("s"); err != nil || cur {
		t.Fatalf("other content: current %v, %v", cur, err)
	}
	if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.LoadedRecord("s"); err == nil {
		t.Fatal("a broken record was accepted")
	}
}
