package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/state"
)

// TestStandinResumeBootsTheLatestSnapshot: on both stand-ins, a
// snapshot stored without loading (bb commit --no-load, bb import) is
// what the next bb resume boots; a commit another tool recorded in
// committed-image after bb's load is booted as it is.
func TestStandinResumeBootsTheLatestSnapshot(t *testing.T) {
	backendtest.RequireRoot(t)
	bin := t.TempDir()
	if err := standin.Build(context.Background(), bin); err != nil {
		t.Fatal(err)
	}
	harnesses := map[string]func(t *testing.T) backendtest.Harness{
		"container": func(t *testing.T) backendtest.Harness { return backendtest.NewContainerHarness(t, bin) },
		"smolvm":    func(t *testing.T) backendtest.Harness { return backendtest.NewSmolvmHarness(t, bin, nil) },
	}
	for name, newHarness := range harnesses {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			home := state.Home{Dir: t.TempDir()}
			bb := func(args ...string) string {
				t.Helper()
				out, err := runStandinBB(t, append([]string{"--home", home.Dir}, args...)...)
				if err != nil {
					t.Fatalf("bb %s: %v\n%s", strings.Join(args, " "), err, out)
				}
				return out
			}
			setNote := func(slug, s string) {
				t.Helper()
				if _, err := h.Exec(t, slug, nil, "sh", "-c", "echo "+s+" > /root/note"); err != nil {
					t.Fatal(err)
				}
			}
			note := func(slug string) string {
				t.Helper()
				b, err := h.Exec(t, slug, nil, "cat", "/root/note")
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
			start := func(slug string) {
				h.Start(t, slug, backendtest.BaseRootfs(t, testimage.Options{}))
				t.Cleanup(func() { h.Remove(t, slug) })
				if err := home.WriteMetadata(slug, state.Metadata{Identity: slug, Backend: h.Backend()}); err != nil {
					t.Fatal(err)
				}
			}

			slug := "resume-nl"
			start(slug)
			setNote(slug, "A")
			bb("commit", slug)
			committedA, _ := home.CommittedImage(slug)
			setNote(slug, "B")
			bb("commit", "--no-load", slug)
			if c, _ := home.CommittedImage(slug); c != committedA {
				t.Fatalf("commit --no-load changed committed-image: %q -> %q", committedA, c)
			}
			if out := bb("resume", "--print", slug); strings.TrimSpace(out) != committedA {
				t.Fatalf("resume --print said %q", out)
			}
			bb("resume", "--replace", slug)
			if n := note(slug); n != "B" {
				t.Fatalf("resume after commit --no-load booted note %q, want B", n)
			}

			// Another tool records a commit after bb's load: resume boots
			// it and does not load bb's later snapshot over it.
			setNote(slug, "C")
			bb("commit", slug)
			setNote(slug, "D")
			bb("commit", "--no-load", slug)
			ci := filepath.Join(home.StateDir(slug), state.CommittedImageFile)
			later := time.Now().Add(time.Second)
			if err := os.Chtimes(ci, later, later); err != nil {
				t.Fatal(err)
			}
			bb("resume", "--replace", slug)
			if n := note(slug); n != "C" {
				t.Fatalf("resume after another tool's record booted note %q, want C (what committed-image names)", n)
			}

			// An import without loading replaces the slug's snapshot: resume boots it.
			other := "resume-other"
			start(other)
			setNote(other, "imported")
			bb("commit", "--no-load", other)
			archive := filepath.Join(t.TempDir(), "x.tar")
			bb("export", other, "-o", archive)
			bb("commit", slug) // bb's own load again, so that the record is current
			bb("import", archive, "--as", slug, "--force")
			bb("resume", "--replace", slug)
			if n := note(slug); n != "imported" {
				t.Fatalf("resume after import booted note %q, want imported", n)
			}
		})
	}
}
