package adversarial

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
)

// bb doctor reports a damaged store and says what it would fix; --fix
// fixes what is safe and leaves a damaged blob a tag needs, naming it.
func TestDoctor(t *testing.T) {
	home := t.TempDir()
	store := filepath.Join(home, "oci")
	src := t.TempDir()
	tree(t, src, 5, 32<<10)
	mustRun(t, home, "commit", "--from-dir", src, "--slug", "doc")
	if out := mustRun(t, home, "doctor"); !strings.Contains(out, "no problems found") {
		t.Fatalf("clean store:\n%s", out)
	}
	s, _ := oci.Open(store)
	desc, err := s.Resolve(t.Context(), "doc")
	if err != nil {
		t.Fatal(err)
	}
	// A stale temp file, a loose mode, a damaged tagged manifest.
	tmp := filepath.Join(store, "ingest", "blob-killed")
	_ = os.WriteFile(tmp, []byte("partial"), 0o600)
	old := time.Now().Add(-2 * oci.TempGrace)
	_ = os.Chtimes(tmp, old, old)
	_ = os.Chmod(filepath.Join(home, "state", "doc"), 0o755)
	mp := s.BlobPath(desc.Digest)
	b, _ := os.ReadFile(mp)
	b[len(b)-2] ^= 1
	_ = os.Chmod(mp, 0o600)
	_ = os.WriteFile(mp, b, 0o600)

	out, err := run(t, home, "doctor")
	if err == nil {
		t.Fatalf("doctor passed a damaged store:\n%s", out)
	}
	for _, want := range []string{"would fix: remove it", "would fix: chmod 0700", "needed by doc"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	out, err = run(t, home, "doctor", "--fix", "--json")
	if err == nil {
		t.Fatalf("doctor --fix claims a damaged tagged blob is fixed:\n%s", out)
	}
	if _, err := os.Stat(tmp); err == nil {
		t.Error("--fix left the stale temp file")
	}
	if fi, _ := os.Stat(filepath.Join(home, "state", "doc")); fi.Mode().Perm() != 0o700 {
		t.Errorf("--fix left the state directory %v", fi.Mode().Perm())
	}
	if _, err := os.Stat(mp); err != nil {
		t.Error("--fix removed a blob a tag needs")
	}
}
