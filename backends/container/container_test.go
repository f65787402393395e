package container_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/backendtest"
	"github.com/bot-bottle/bb/internal/testimage"
	"github.com/bot-bottle/bb/state"
)

var standins string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 && os.Getenv("CI") == "" {
		os.Exit(m.Run()) // the tests skip themselves
	}
	dir, cleanup, err := backendtest.BuildStandins()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standins = dir
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// harness runs bottles in the container stand-in through its CLI, the
// way bot-bottle's launcher does: the test root filesystem becomes an
// image (container image load), the bottle a container (container run).
type harness struct {
	root string // the stand-in's state
}

func newHarness(t *testing.T) *harness {
	return &harness{root: backendtest.UseStandins(t, standins)}
}

func (h *harness) Backend() string { return bottle.MacosContainer }

func (h *harness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	return &container.Runtime{Home: home}
}

func cli(t testing.TB, stdin io.Reader, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("container", args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("container %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

func mustCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	out, err := cli(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (h *harness) Start(t testing.TB, slug, dir string) {
	t.Helper()
	img, err := testimage.HostImage(context.Background(), dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := "docker.io/library/bb-test-base-" + slug + ":latest"
	archive := filepath.Join(t.TempDir(), "base.tar")
	f, err := os.Create(archive)
	if err != nil {
		t.Fatal(err)
	}
	if err := container.WriteArchive(context.Background(), f, img, ref); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustCLI(t, "image", "load", "-i", archive)
	mustCLI(t, "run", "--detach", "--name", bottle.Name(slug), ref)
}

func (h *harness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	args := []string{"exec", "--user", "root"}
	if stdin != nil {
		args = append(args, "-i")
	}
	args = append(append(args, bottle.Name(slug)), argv...)
	return cli(t, stdin, args...)
}

func (h *harness) Tree(t testing.TB, slug string) string {
	return filepath.Join(h.root, "container", "containers", bottle.Name(slug), "rootfs")
}

func (h *harness) Remove(t testing.TB, slug string) {
	_, _ = cli(t, nil, "delete", "--force", bottle.Name(slug))
}

func (h *harness) Forget(t testing.TB, home state.Home, slug, committed string) {
	mustCLI(t, "image", "delete", committed)
}

func TestBackendSuite(t *testing.T) {
	backendtest.Run(t, newHarness(t))
}
