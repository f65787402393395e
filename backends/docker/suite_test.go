package docker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// dockerHarness runs the shared backend suite on the real daemon: a
// bottle is a container (no network) of an image of the suite's root
// filesystem, commands run as API execs, and the tree is read through
// the container's overlay mount or an export. Forget removes the
// committed image and the bottle's base image, so that a resume must
// load every layer of the snapshot from bb's store.
type dockerHarness struct {
	c    *client.Client
	logs *logs

	mu   sync.Mutex
	base map[string]string // slug -> base image
}

var _ backendtest.Harness = (*dockerHarness)(nil)

func (h *dockerHarness) Backend() string { return bottle.Docker }

func (h *dockerHarness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	t.Helper()
	s, err := oci.Open(home.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	return &docker.Runtime{Client: h.c, Store: s, Network: "none", Logger: slog.New(h.logs)}
}

func (h *dockerHarness) Start(t testing.TB, slug, dir string) {
	t.Helper()
	ref := loadImageConfig(t, h.c, dir, testimage.ExitingConfig())
	h.mu.Lock()
	h.base[slug] = ref
	h.mu.Unlock()
	startWith(t, h.c, ref, slug, container.Config{Cmd: testimage.OwnCommand})
}

// KnownLosses: the daemon (dockerd 20.10, overlay2) drops xattrs with
// an empty value (the suite's user.b); the snapshot's layer carries it.
func (h *dockerHarness) KnownLosses() []string { return []string{"user.b"} }

func (h *dockerHarness) Command(t testing.TB, slug string) []string {
	t.Helper()
	ci, err := h.c.ContainerInspect(context.Background(), bottle.Name(slug))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{ci.Path}, ci.Args...)
}

func (h *dockerHarness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	out, errOut, code, err := execIn(h.c, bottle.Name(slug), stdin, argv)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return []byte(out), fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(errOut))
	}
	return []byte(out), nil
}

func (h *dockerHarness) Tree(t testing.TB, slug string) string {
	return rootDir(t, h.c, bottle.Name(slug))
}

func (h *dockerHarness) Remove(t testing.TB, slug string) {
	_ = h.c.ContainerRemove(context.Background(), bottle.Name(slug), container.RemoveOptions{Force: true})
}

func (h *dockerHarness) Forget(t testing.TB, home state.Home, slug, committed string) {
	t.Helper()
	h.mu.Lock()
	base := h.base[slug]
	h.mu.Unlock()
	for _, ref := range []string{committed, base} {
		if _, err := h.c.ImageRemove(context.Background(), ref, image.RemoveOptions{}); err != nil {
			t.Fatalf("removing image %s: %v", ref, err)
		}
	}
}

// TestBackendSuite runs the shared backend suite (internal/testing/backendtest)
// on the Docker backend, through bottle.Manager, with a daemon that has
// none of the snapshot's layers at resume.
func TestBackendSuite(t *testing.T) {
	h := &dockerHarness{c: needDocker(t), logs: &logs{}, base: map[string]string{}}
	backendtest.RequireRoot(t) // the suite checks owners in the trees it reads
	t.Parallel()
	backendtest.Run(t, h)
	// The suite's tree has a name that is not UTF-8, which the daemon's
	// change list cannot carry: the snapshot is a full one then. The
	// container's upper directory names it as bytes: the snapshot stays
	// incremental.
	switch {
	case t.Failed():
	case h.logs.contains("listed the changes in the upper directory"):
		if h.logs.contains("making a full snapshot") {
			t.Errorf("the upper directory was read, yet the snapshot is a full one:\n%s", h.logs)
		}
	case !h.logs.contains("making a full snapshot"):
		t.Errorf("a changed name that is not UTF-8 did not make a full snapshot:\n%s", h.logs)
	}
}
