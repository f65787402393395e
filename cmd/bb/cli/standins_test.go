package cli_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/state"
)

func runStandinBB(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	c := cli.New()
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errb)
	c.SetIn(strings.NewReader(""))
	err := c.ExecuteContext(context.Background())
	if err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

// TestStandinBackends drives bb commit, resume --print, list and resume
// from the command line on both stand-ins, with the runtimes and the
// embedded registry as bb wires them.
func TestStandinBackends(t *testing.T) {
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
			slug := "cli"
			h.Start(t, slug, backendtest.BaseRootfs(t, testimage.Options{}))
			defer h.Remove(t, slug)
			if err := home.WriteMetadata(slug, state.Metadata{Identity: slug, Backend: h.Backend()}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Exec(t, slug, nil, "sh", "-c", "echo hello > /root/note"); err != nil {
				t.Fatal(err)
			}
			out, err := runStandinBB(t, "--home", home.Dir, "commit", slug)
			if err != nil {
				t.Fatalf("bb commit: %v\n%s", err, out)
			}
			committed, err := home.CommittedImage(slug)
			if err != nil || committed == "" || !strings.Contains(out, committed) {
				t.Fatalf("committed-image %q (%v); bb said:\n%s", committed, err, out)
			}
			if out, err := runStandinBB(t, "--home", home.Dir, "list"); err != nil || !strings.Contains(out, slug) {
				t.Errorf("bb list: %v\n%s", err, out)
			}
			h.Remove(t, slug)
			h.Forget(t, home, slug, committed)
			out, err = runStandinBB(t, "--home", home.Dir, "resume", slug, "--print")
			if err != nil || strings.TrimSpace(out) != committed {
				t.Fatalf("bb resume --print: %v\n%s", err, out)
			}
			if out, err := runStandinBB(t, "--home", home.Dir, "resume", slug); err != nil {
				t.Fatalf("bb resume: %v\n%s", err, out)
			}
			if note, err := h.Exec(t, slug, nil, "cat", "/root/note"); err != nil || string(note) != "hello\n" {
				t.Errorf("after resume /root/note = %q, %v", note, err)
			}
			if _, err := os.Stat(h.Tree(t, slug)); err != nil {
				t.Error(err)
			}
		})
	}
}
