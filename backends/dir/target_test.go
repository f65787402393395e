package dir_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bb resume --dir onto something that is not an empty directory (a
// file, a symlink) leaves it as it was unless --replace is given; with
// --replace, a symlink is replaced, never followed.
func TestResumeDirKeepsWhatIsThere(t *testing.T) {
	home := t.TempDir()
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("snap"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "--home", home, "commit", "--from-dir", src, "--slug", "redteam-target")
	base := t.TempDir()
	victimDir := filepath.Join(base, "victim-dir")
	if err := os.Mkdir(victimDir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victimDir, "keep"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyDir := filepath.Join(base, "empty-dir")
	if err := os.Mkdir(emptyDir, 0o750); err != nil {
		t.Fatal(err)
	}
	for name, make := range map[string]func(p string) error{
		"file":                   func(p string) error { return os.WriteFile(p, []byte("host"), 0o600) },
		"symlink to a directory": func(p string) error { return os.Symlink(victimDir, p) },
		"symlink to an empty directory": func(p string) error {
			return os.Symlink(emptyDir, p)
		},
		"dangling symlink": func(p string) error { return os.Symlink(filepath.Join(base, "nowhere"), p) },
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			if err := make(out); err != nil {
				t.Fatal(err)
			}
			before, _ := os.Lstat(out)
			if _, _, err := runErr("--home", home, "resume", "redteam-target", "--dir", out); err == nil {
				t.Fatalf("resume onto an existing %s succeeded without --replace", name)
			}
			after, err := os.Lstat(out)
			if err != nil || after.Mode() != before.Mode() || after.Size() != before.Size() {
				t.Fatalf("resume without --replace changed %s: %v %v", out, after, err)
			}
			run(t, "--home", home, "resume", "redteam-target", "--dir", out, "--replace")
			if b, err := os.ReadFile(filepath.Join(out, "f")); err != nil || string(b) != "snap" {
				t.Fatalf("resumed tree: %q %v", b, err)
			}
			if b, err := os.ReadFile(filepath.Join(victimDir, "keep")); err != nil || string(b) != "host" {
				t.Fatalf("the directory a symlink pointed to changed: %q %v", b, err)
			}
			if ents, _ := os.ReadDir(emptyDir); len(ents) != 0 {
				t.Fatalf("resume wrote through a symlink into %s", emptyDir)
			}
		})
	}
}

// A resume target that holds bb's home or store, or lies in the store,
// is refused: with --replace it would remove every snapshot.
func TestResumeDirRefusesBBsOwnDirectories(t *testing.T) {
	base := t.TempDir()
	home := filepath.Join(base, "home", ".bot-bottle")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("snap"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, "--home", home, "commit", "--from-dir", src, "--slug", "redteam-own")
	link := filepath.Join(base, "link-to-home")
	if err := os.Symlink(filepath.Join(base, "home"), link); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{
		home,
		filepath.Join(base, "home"),
		filepath.Join(home, "oci"),
		filepath.Join(home, "oci", "blobs"),
		filepath.Join(home, "oci", "new"),
		link,
		filepath.Join(link, ".bot-bottle", "oci", "x"),
	} {
		if _, _, err := runErr("--home", home, "resume", "redteam-own", "--dir", dst, "--replace"); err == nil {
			t.Errorf("resume --dir %s --replace succeeded", dst)
		}
		if out := run(t, "--home", home, "list"); !strings.Contains(out, "redteam-own") {
			t.Fatalf("snapshot gone after resume --dir %s:\n%s", dst, out)
		}
	}
	// The slug's default target, inside the home's state, stays fine.
	run(t, "--home", home, "resume", "redteam-own")
	run(t, "--home", home, "resume", "redteam-own", "--dir", filepath.Join(base, "elsewhere"))
}
