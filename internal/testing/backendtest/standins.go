package backendtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/state"
)

// CLI runs a stand-in (or any command) and returns its stdout; the error
// carries its stderr.
func CLI(t testing.TB, stdin io.Reader, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = stdin
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes(), nil
}

// MustCLI is CLI that fails the test on error.
func MustCLI(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	out, err := CLI(t, nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// ContainerHarness runs bottles in the container stand-in through its
// CLI, the way bot-bottle's launcher does: the test root filesystem
// becomes an image (container image load), the bottle a container
// (container run).
type ContainerHarness struct {
	// Root is the stand-ins' state directory.
	Root string
}

// NewContainerHarness puts the stand-ins in binDir on PATH for t.
func NewContainerHarness(t testing.TB, binDir string) *ContainerHarness {
	return &ContainerHarness{Root: UseStandins(t, binDir)}
}

// Backend implements Harness.
func (h *ContainerHarness) Backend() string { return bottle.MacosContainer }

// Runtime implements Harness.
func (h *ContainerHarness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	// The stand-in runs no init process, so watching a booted bottle
	// proves nothing there: a short settle keeps the suite fast.
	return &container.Runtime{Home: home, Settle: 100 * time.Millisecond}
}

// Start implements Harness.
func (h *ContainerHarness) Start(t testing.TB, slug, dir string) {
	t.Helper()
	img, err := testimage.HostImageConfig(context.Background(), dir, t.TempDir(), testimage.ExitingConfig())
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
	MustCLI(t, "container", "image", "load", "-i", archive)
	MustCLI(t, "container", append([]string{"run", "--detach", "--name", bottle.Name(slug), ref}, testimage.OwnCommand...)...)
}

// Command implements Harness: the init process of container inspect.
func (h *ContainerHarness) Command(t testing.TB, slug string) []string {
	t.Helper()
	var cs []struct {
		Configuration struct {
			InitProcess struct {
				Executable string   `json:"executable"`
				Arguments  []string `json:"arguments"`
			} `json:"initProcess"`
		} `json:"configuration"`
	}
	if err := json.Unmarshal(MustCLI(t, "container", "inspect", bottle.Name(slug)), &cs); err != nil || len(cs) != 1 {
		t.Fatalf("container inspect %s: %v", bottle.Name(slug), err)
	}
	ip := cs[0].Configuration.InitProcess
	return append([]string{ip.Executable}, ip.Arguments...)
}

// Exec implements Harness.
func (h *ContainerHarness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	args := []string{"exec", "--user", "root"}
	if stdin != nil {
		args = append(args, "-i")
	}
	args = append(append(args, bottle.Name(slug)), argv...)
	return CLI(t, stdin, "container", args...)
}

// Tree implements Harness.
func (h *ContainerHarness) Tree(t testing.TB, slug string) string {
	return filepath.Join(h.Root, "container", "containers", bottle.Name(slug), "rootfs")
}

// Remove implements Harness.
func (h *ContainerHarness) Remove(t testing.TB, slug string) {
	_, _ = CLI(t, nil, "container", "delete", "--force", bottle.Name(slug))
}

// Forget implements Harness.
func (h *ContainerHarness) Forget(t testing.TB, home state.Home, slug, committed string) {
	MustCLI(t, "container", "image", "delete", committed)
}

// SmolvmHarness runs bottles as machines of the smolvm stand-in, through
// its CLI: machine create --image DIR, machine start, machine exec.
type SmolvmHarness struct {
	Root  string
	Serve pack.ServeFunc
}

// NewSmolvmHarness puts the stand-ins in binDir on PATH for t; serve is
// the registry pack create pulls from.
func NewSmolvmHarness(t testing.TB, binDir string, serve pack.ServeFunc) *SmolvmHarness {
	return &SmolvmHarness{Root: UseStandins(t, binDir), Serve: serve}
}

// Backend implements Harness.
func (h *SmolvmHarness) Backend() string { return bottle.Smolmachines }

// Runtime implements Harness.
func (h *SmolvmHarness) Runtime(t testing.TB, home state.Home) bottle.Runtime {
	return &smolvm.Runtime{Home: home, Pack: pack.Options{Serve: h.Serve}, Settle: 100 * time.Millisecond}
}

// Start implements Harness.
func (h *SmolvmHarness) Start(t testing.TB, slug, dir string) {
	t.Helper()
	MustCLI(t, "smolvm", append([]string{"machine", "create", "--name", bottle.Name(slug), "--image", dir, "--"}, testimage.OwnCommand...)...)
	MustCLI(t, "smolvm", "machine", "start", "--name", bottle.Name(slug))
}

// Command implements Harness: entrypoint and cmd of machine ls --json.
func (h *SmolvmHarness) Command(t testing.TB, slug string) []string {
	t.Helper()
	var ms []struct {
		Name       string   `json:"name"`
		Entrypoint []string `json:"entrypoint"`
		Cmd        []string `json:"cmd"`
	}
	if err := json.Unmarshal(MustCLI(t, "smolvm", "machine", "ls", "--json"), &ms); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == bottle.Name(slug) {
			return append(append([]string{}, m.Entrypoint...), m.Cmd...)
		}
	}
	t.Fatalf("smolvm machine ls has no %s", bottle.Name(slug))
	return nil
}

// Exec implements Harness.
func (h *SmolvmHarness) Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error) {
	args := []string{"machine", "exec", "--name", bottle.Name(slug)}
	if stdin != nil {
		args = append(args, "-i")
	}
	return CLI(t, stdin, "smolvm", append(append(args, "--"), argv...)...)
}

// MachineDir is the stand-in's directory of a bottle's machine.
func (h *SmolvmHarness) MachineDir(slug string) string {
	return filepath.Join(h.Root, "smolvm", "machines", bottle.Name(slug))
}

// Tree implements Harness.
func (h *SmolvmHarness) Tree(t testing.TB, slug string) string {
	return filepath.Join(h.MachineDir(slug), "rootfs")
}

// Remove implements Harness.
func (h *SmolvmHarness) Remove(t testing.TB, slug string) {
	_, _ = CLI(t, nil, "smolvm", "machine", "stop", "--name", bottle.Name(slug))
	_, _ = CLI(t, nil, "smolvm", "machine", "delete", "--name", bottle.Name(slug), "--force")
}

// Forget implements Harness: the artifact and its launcher are deleted.
func (h *SmolvmHarness) Forget(t testing.TB, home state.Home, slug, committed string) {
	for _, p := range []string{committed, strings.TrimSuffix(committed, ".smolmachine")} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	_ = os.Remove(committed + ".bb-manifest")
	_ = os.Remove(committed + ".bb-restore.tar")
}

var (
	_ Harness = (*ContainerHarness)(nil)
	_ Harness = (*SmolvmHarness)(nil)
)
