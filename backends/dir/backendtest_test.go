package dir_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/state"
)

// dirHarness runs the shared backend suite on the dir backend: a bottle
// is a directory (commands run chrooted into it); after a resume it is
// the directory the snapshot was extracted into.
type dirHarness struct {
	home state.Home
	dirs map[string]string
}

func (h *dirHarness) Backend() string { return bottle.Dir }

func (h *dirHarness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	h.home = home
	return &dir.Runtime{Home: home}
}

func (h *dirHarness) Start(t testing.TB, slug, d string) {
	t.Helper()
	rt := &dir.Runtime{Home: h.home}
	if err := rt.Register(slug, d); err != nil {
		t.Fatal(err)
	}
	h.dirs[slug] = d
}

func (h *dirHarness) Command(t testing.TB, slug string) []string { return nil }

func (h *dirHarness) Tree(t testing.TB, slug string) string {
	if d := h.dirs[slug]; d != "" {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return filepath.Join(h.home.StateDir(slug), "rootfs")
}

func (h *dirHarness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	return backendtest.ExecChroot(h.Tree(t, slug), stdin, argv...)
}

func (h *dirHarness) Remove(t testing.TB, slug string) {
	if d := h.dirs[slug]; d != "" {
		_ = os.RemoveAll(d)
	}
	_ = os.RemoveAll(filepath.Join(h.home.StateDir(slug), "rootfs"))
}

func (h *dirHarness) Forget(t testing.TB, home state.Home, slug, committed string) {}

func TestBackendSuite(t *testing.T) {
	backendtest.RequireRoot(t)
	backendtest.Run(t, &dirHarness{dirs: map[string]string{}})
}
