package state

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestStateIsPrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	h := Home{Dir: filepath.Join(t.TempDir(), "home")}
	if err := h.WriteMetadata("s", Metadata{Backend: "dir"}); err != nil {
		t.Fatal(err)
	}
	if err := h.RecordCommit("s", "ref"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{h.Dir, filepath.Join(h.Dir, "state"), h.StateDir("s")} {
		if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
			t.Errorf("%s is %v", d, fi.Mode().Perm())
		}
	}
	for _, f := range []string{MetadataFile, CommittedImageFile, PreserveMarker} {
		if fi, _ := os.Stat(filepath.Join(h.StateDir("s"), f)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s is %v", f, fi.Mode().Perm())
		}
	}
	// An older bb's files under umask 022 are tightened, with a notice.
	_ = os.Chmod(h.Dir, 0o755)
	_ = os.Chmod(h.StateDir("s"), 0o755)
	_ = os.Chmod(filepath.Join(h.StateDir("s"), MetadataFile), 0o644)
	if fs, _ := h.Check(false); len(fs) != 3 {
		t.Fatalf("Check found %d problems, want 3: %+v", len(fs), fs)
	}
	var log bytes.Buffer
	if err := h.Secure(slog.New(slog.NewTextHandler(&log, nil))); err != nil {
		t.Fatal(err)
	}
	if fs, _ := h.Check(false); len(fs) != 0 {
		t.Fatalf("after Secure: %+v", fs)
	}
	if bytes.Count(log.Bytes(), []byte("made private")) != 3 {
		t.Fatalf("notices: %s", log.String())
	}
}
