package smolvm_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/backendtest"
	"github.com/bot-bottle/bb/internal/testregistry"
	"github.com/bot-bottle/bb/pack"
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

// harness runs bottles as machines of the smolvm stand-in, through its
// CLI: machine create --image DIR, machine start, machine exec.
type harness struct {
	root  string
	serve pack.ServeFunc
}

func newHarness(t *testing.T) *harness {
	return &harness{root: backendtest.UseStandins(t, standins), serve: testregistry.Serve(testregistry.Options{})}
}

func (h *harness) Backend() string { return bottle.Smolmachines }

func (h *harness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	return &smolvm.Runtime{Home: home, Pack: pack.Options{Serve: h.serve}}
}

func cli(t testing.TB, stdin io.Reader, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("smolvm", args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("smolvm %s: %w: %s", strings.Join(args, " "), err, errb.String())
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
	mustCLI(t, "machine", "create", "--name", bottle.Name(slug), "--image", dir)
	mustCLI(t, "machine", "start", "--name", bottle.Name(slug))
}

func (h *harness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	args := []string{"machine", "exec", "--name", bottle.Name(slug)}
	if stdin != nil {
		args = append(args, "-i")
	}
	return cli(t, stdin, append(append(args, "--"), argv...)...)
}

func (h *harness) machineDir(slug string) string {
	return filepath.Join(h.root, "smolvm", "machines", bottle.Name(slug))
}

func (h *harness) Tree(t testing.TB, slug string) string {
	return filepath.Join(h.machineDir(slug), "rootfs")
}

func (h *harness) Remove(t testing.TB, slug string) {
	_, _ = cli(t, nil, "machine", "stop", "--name", bottle.Name(slug))
	_, _ = cli(t, nil, "machine", "delete", "--name", bottle.Name(slug), "--force")
}

func (h *harness) Forget(t testing.TB, home state.Home, slug, committed string) {
	for _, p := range []string{committed, strings.TrimSuffix(committed, ".smolmachine")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackendSuite(t *testing.T) {
	backendtest.Run(t, newHarness(t))
}
