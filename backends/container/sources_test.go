package container_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestDefaultDomain: container expands short references with the user's
// default registry domain; bb names its snapshots in full, so a round
// trip works whatever the domain is.
func TestDefaultDomain(t *testing.T) {
	h := newHarness(t)
	t.Setenv("BB_STANDIN_CONTAINER_REGISTRY_DOMAIN", "registry.example.com")
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	backendtest.StartBottle(t, h, e, "domain", testimage.Options{})
	res, err := e.Manager.Commit(ctx, "domain", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli(t, nil, "image", "inspect", res.Committed); err == nil {
		t.Fatalf("the stand-in found %s under the default domain registry.example.com", res.Committed)
	}
	if has, err := e.Manager.Runtimes[bottle.MacosContainer].Has(ctx, res.Committed); err != nil || !has {
		t.Fatalf("Has(%s) = %v, %v", res.Committed, has, err)
	}
	h.Remove(t, "domain")
	if _, err := e.Manager.Resume(ctx, "domain", bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestImageInspectSubset: image inspect shows only User, Env, Entrypoint,
// Cmd, WorkingDir, Labels and StopSignal of an image config; a snapshot
// keeps the bottle's own command and settings (and, without --keep-env,
// not the environment it was started with).
func TestImageInspectSubset(t *testing.T) {
	h := newHarness(t)
	backendtest.StartBottle(t, h, backendtest.NewEnv(t, h), "subset", testimage.Options{})
	out := string(mustCLI(t, "image", "inspect", "docker.io/library/bb-test-base-subset:latest"))
	if strings.Contains(out, "ExposedPorts") || !strings.Contains(out, `"WorkingDir"`) {
		t.Errorf("image inspect config is not containerization's subset:\n%s", out)
	}
}

func TestOwnSettings(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	img := "docker.io/library/bb-test-base-own:latest"
	backendtest.StartBottle(t, h, e, "own", testimage.Options{})
	mustCLI(t, "delete", "--force", bottle.Name("own"))
	mustCLI(t, "run", "--detach", "--name", bottle.Name("own"), "--user", "node", "--workdir", "/tmp", "-e", "AGENT_TOKEN=secret", img, "/bin/sleep", "1000")
	for _, keep := range []bool{false, true} {
		if _, err := e.Manager.Commit(ctx, "own", bottle.CommitOptions{NoLoad: true, Prepare: bottle.PrepareOptions{KeepEnv: keep}}); err != nil {
			t.Fatal(err)
		}
		ins, err := e.Manager.Inspect(ctx, "own")
		if err != nil {
			t.Fatal(err)
		}
		c := ins.Config.Config
		if strings.Join(c.Cmd, " ") != "/bin/sleep 1000" || c.User != "node" || c.WorkingDir != "/tmp" {
			t.Errorf("snapshot config: cmd %q user %q workdir %q", c.Cmd, c.User, c.WorkingDir)
		}
		if got := strings.Contains(strings.Join(c.Env, " "), "AGENT_TOKEN"); got != keep {
			t.Errorf("keep-env %v: Env %q", keep, c.Env)
		}
	}
}

// TestNameRules: slugs whose bottle name container refuses are refused
// before any work.
func TestNameRules(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	long := strings.Repeat("a", 53) // bot-bottle- + 53 = 64 characters
	if _, err := e.Manager.Commit(context.Background(), long, bottle.CommitOptions{Backend: bottle.MacosContainer}); err == nil || !strings.Contains(err.Error(), "63") {
		t.Errorf("commit of a 64-character name: %v", err)
	}
	if err := bottle.CheckContainerName(long[:52]); err != nil {
		t.Errorf("63 characters: %v", err)
	}
	if _, err := cli(t, nil, "run", "--detach", "--name", bottle.Name(long), "x"); err == nil || !strings.Contains(err.Error(), "not a valid container ID") {
		t.Errorf("the stand-in ran a 64-character name: %v", err)
	}
}

// TestExecDrain: once the process exited, container exec relays what is
// left of its output for at most 3 s (the stand-in's limit is shortened
// here), then fails; bb reads that as a failure, never as tar's status.
func TestExecDrain(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "drain", testimage.Options{})
	if err := os.WriteFile(filepath.Join(h.Tree(t, "drain"), "out"), make([]byte, 150<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("container", "exec", bottle.Name("drain"), "cat", "/out")
	cmd.Env = append(os.Environ(), "BB_STANDIN_CONTAINER_DRAIN_TIMEOUT=300ms")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // nobody reads: the relay cannot finish
	st, _ := cmd.Process.Wait()
	stdout.Close()
	if st.Success() {
		t.Fatal("container exec succeeded although its output was never drained")
	}
}
