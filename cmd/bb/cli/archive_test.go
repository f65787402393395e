package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/fstree"
)

// bb runs one command against home (its store under home/oci).
func bb(t *testing.T, home string, stdin io.Reader, args ...string) (string, string, error) {
	t.Helper()
	cmd := cli.New()
	var out, errb bytes.Buffer
	cmd.SetArgs(append([]string{"--home", home, "--store", filepath.Join(home, "oci")}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	cmd.SetIn(stdin)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

func mustBB(t *testing.T, home string, stdin io.Reader, args ...string) string {
	t.Helper()
	out, errs, err := bb(t, home, stdin, args...)
	if err != nil {
		t.Fatalf("bb %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

func writeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"etc/os-release":            "ID=bottle\n",
		"home/node/project/main.go": "package main\n",
		"home/node/.bash_history":   "make test\n",
	}
	for p, c := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("agent output line\n"), 1<<15)
	if err := os.WriteFile(filepath.Join(dir, "home/node/project/log.txt"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("project/main.go", filepath.Join(dir, "home/node/main")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	skip := fstree.Under("tmp", "var", "proc", "sys", "dev", "run")
	w, err := fstree.Walk(want, skip)
	if err != nil {
		t.Fatal(err)
	}
	g, err := fstree.Walk(got, skip)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(w, g); len(d) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
	}
}

// TestExportImportResume is the migration: commit a directory on one
// host, export, import on another (its own home and store), resume.
func TestExportImportResume(t *testing.T) {
	src := writeTree(t)
	hostA, hostB := t.TempDir(), t.TempDir()
	mustBB(t, hostA, nil, "commit", "--from-dir", src, "--slug", "demo")
	file := filepath.Join(t.TempDir(), "demo.tar")
	out := mustBB(t, hostA, nil, "export", "demo", "-o", file)
	if !strings.Contains(out, "bot-bottle-committed-demo:latest") {
		t.Errorf("export said %q", out)
	}

	out = mustBB(t, hostB, nil, "import", file)
	if !strings.Contains(out, "imported demo") || !strings.Contains(out, "bb resume demo") {
		t.Errorf("import said %q", out)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	mustBB(t, hostB, nil, "resume", "demo", "--dir", dst)
	sameTree(t, src, dst)

	// Through a pipe, under another slug, with JSON output.
	archive := []byte(mustBB(t, hostA, nil, "export", "demo", "-o", "-"))
	out = mustBB(t, hostB, bytes.NewReader(archive), "import", "-", "--as", "piped", "--json")
	var res struct {
		Images []struct{ Slug, Digest string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Images) != 1 || res.Images[0].Slug != "piped" {
		t.Fatalf("import --json: %v %s", err, out)
	}
	dst2 := filepath.Join(t.TempDir(), "rootfs")
	mustBB(t, hostB, nil, "resume", "piped", "--dir", dst2)
	sameTree(t, src, dst2)

	// A damaged archive is refused and says why.
	cut := filepath.Join(t.TempDir(), "cut.tar")
	if err := os.WriteFile(cut, archive[:len(archive)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	hostC := t.TempDir()
	if _, _, err := bb(t, hostC, nil, "import", cut); err == nil || !strings.Contains(err.Error(), "invalid archive") {
		t.Fatalf("damaged archive: %v", err)
	}
	if _, err := os.Stat(filepath.Join(hostC, "state")); err == nil {
		t.Error("a refused import wrote state")
	}

	// export needs -o.
	if _, _, err := bb(t, hostA, nil, "export", "demo"); err == nil || !strings.Contains(err.Error(), "-o FILE") {
		t.Errorf("export without -o: %v", err)
	}
	// --layout takes single or referrers.
	if _, _, err := bb(t, hostA, nil, "export", "demo", "-o", filepath.Join(t.TempDir(), "x.tar"), "--layout", "flat"); err == nil || !strings.Contains(err.Error(), "referrers") {
		t.Errorf("export --layout flat: %v", err)
	}
	refs := filepath.Join(t.TempDir(), "refs.tar")
	mustBB(t, hostA, nil, "export", "demo", "-o", refs, "--layout", "referrers")
	hostD := t.TempDir()
	if out := mustBB(t, hostD, nil, "import", refs); !strings.Contains(out, "metadata restored") {
		t.Errorf("import of a referrers layout export: %s", out)
	}
}

// A snapshot that travels without its metadata (a first commit, killed
// before the metadata was stored, or export --no-metadata) resumes on the
// backend its manifest names, not on docker by default.
func TestImportWithoutMetadataKeepsBackend(t *testing.T) {
	src := writeTree(t)
	hostA, hostB := t.TempDir(), t.TempDir()
	mustBB(t, hostA, nil, "commit", "--from-dir", src, "--slug", "bare")
	file := filepath.Join(t.TempDir(), "bare.tar")
	mustBB(t, hostA, nil, "export", "bare", "--no-metadata", "-o", file)
	mustBB(t, hostB, nil, "import", file, "--as", "bare2")
	dst := filepath.Join(t.TempDir(), "rootfs")
	mustBB(t, hostB, nil, "resume", "bare2", "--dir", dst)
	if _, err := os.Stat(dst); err != nil {
		t.Fatalf("resume of an import without metadata: %v", err)
	}
}

// bb export refuses to write into its own store (index.json, a blob),
// directly or through a symlink.
func TestExportRefusesStorePaths(t *testing.T) {
	src := writeTree(t)
	home := t.TempDir()
	mustBB(t, home, nil, "commit", "--from-dir", src, "--slug", "st")
	index := filepath.Join(home, "oci", "index.json")
	before, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "x.tar")
	if err := os.Symlink(index, link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{index, filepath.Join(home, "oci", "blobs", "sha256", "new.tar"), link} {
		if _, _, err := bb(t, home, nil, "export", "st", "-o", p); err == nil || !strings.Contains(err.Error(), "inside bb's store") {
			t.Errorf("export -o %s: %v", p, err)
		}
	}
	if after, _ := os.ReadFile(index); !bytes.Equal(before, after) {
		t.Error("index.json changed")
	}
}
