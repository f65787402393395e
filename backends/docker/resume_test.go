package docker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/state"
)

// loadExitingImage loads a test image whose CMD exits at once.
func loadExitingImage(t testing.TB, c *client.Client) string {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := testimage.BuildRootfs(dir, testimage.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etc", "image-id"), []byte(randHex(8)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := testimage.HostImageConfig(ctx, dir, t.TempDir(), testimage.ExitingConfig())
	if err != nil {
		t.Fatal(err)
	}
	ref := "bb-test-resume-" + randHex(6) + ":latest"
	tag, _ := name.NewTag(ref)
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	resp, err := c.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte("errorDetail")) {
		t.Fatalf("loading %s: %s", ref, out)
	}
	t.Cleanup(func() { removeImage(c, ref) })
	return ref
}

// startWith starts bot-bottle-<slug> from img with its own command and
// settings, the way docker run … IMAGE CMD… does.
func startWith(t testing.TB, c *client.Client, img, slug string, cfg container.Config) {
	t.Helper()
	ctx := context.Background()
	nm := bottle.Name(slug)
	t.Cleanup(func() {
		_ = c.ContainerRemove(context.Background(), nm, container.RemoveOptions{Force: true})
		removeImage(c, state.CommittedRef(slug))
	})
	cfg.Image = img
	cr, err := c.ContainerCreate(ctx, &cfg, &container.HostConfig{NetworkMode: "none"}, nil, nil, nm)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
}

func configOf(t *testing.T, e *env, slug string) v1.Config {
	t.Helper()
	ins, err := e.m.Inspect(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return ins.Config.Config
}

// TestResumeKeepsTheBottlesCommand: a bottle started as
// `docker run … IMAGE sleep infinity` over an image whose CMD exits comes
// back from bb commit; docker rm -f; docker rmi; bb resume running its
// own command, with its working directory and user; the runtime's
// environment stays out of the snapshot without --keep-env.
func TestResumeKeepsTheBottlesCommand(t *testing.T) {
	c := needDocker(t)
	t.Parallel()
	ctx := context.Background()
	base := loadExitingImage(t, c)
	for _, keepEnv := range []bool{false, true} {
		slug := newSlug("owncmd")
		e := newEnv(t, c)
		startWith(t, c, base, slug, container.Config{
			Cmd: []string{"sleep", "infinity"}, WorkingDir: "/root", User: "0:0",
			Env: []string{"AGENT_TOKEN=secret-" + slug},
		})
		args := []string{"commit", slug}
		if keepEnv {
			args = append(args, "--keep-env")
		}
		runCLI(t, e, args...)
		cfg := configOf(t, e, slug)
		if strings.Join(cfg.Cmd, " ") != "sleep infinity" || cfg.WorkingDir != "/root" || cfg.User != "0:0" {
			t.Errorf("snapshot config: cmd %q workdir %q user %q; want the bottle's own", cfg.Cmd, cfg.WorkingDir, cfg.User)
		}
		hasToken := strings.Contains(strings.Join(cfg.Env, "\n"), "AGENT_TOKEN=")
		if hasToken != keepEnv {
			t.Errorf("keep-env=%v: snapshot Env %q", keepEnv, cfg.Env)
		}
		if !strings.Contains(strings.Join(cfg.Env, "\n"), "BOTTLE_TEST=1") {
			t.Errorf("snapshot Env %q lost the base image's variables", cfg.Env)
		}
		// docker rm -f; docker rmi of the snapshot: resume reloads it.
		if err := c.ContainerRemove(ctx, bottle.Name(slug), container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ImageRemove(ctx, state.CommittedRef(slug), image.RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
		out := runCLI(t, e, "resume", slug)
		t.Logf("bb resume: %s", out)
		ci, err := c.ContainerInspect(ctx, bottle.Name(slug))
		if err != nil {
			t.Fatal(err)
		}
		if !ci.State.Running {
			t.Fatalf("resumed bottle is %s (exit %d), want running", ci.State.Status, ci.State.ExitCode)
		}
		if got := strings.Join(append([]string{ci.Path}, ci.Args...), " "); got != "sleep infinity" {
			t.Errorf("resumed bottle runs %q, want sleep infinity", got)
		}
	}
}

// TestResumeReportsABottleThatExits: when the snapshot's command exits at
// once, bb resume fails with its exit code and output, and the snapshot
// and committed-image stay as they were.
func TestResumeReportsABottleThatExits(t *testing.T) {
	c := needDocker(t)
	t.Parallel()
	ctx := context.Background()
	base := loadExitingImage(t, c)
	slug := newSlug("exits")
	e := newEnv(t, c)
	startWith(t, c, base, slug, container.Config{Cmd: []string{"sleep", "infinity"}})
	runCLI(t, e, "commit", slug)
	committed, _ := e.home.CommittedImage(slug)
	before, err := e.store.Resolve(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	// Make the loaded snapshot's command exit: retag an image whose
	// command exits under the committed name, as a runtime would boot it.
	if err := c.ImageTag(ctx, base, committed); err != nil {
		t.Fatal(err)
	}
	// A settle time well above the default: on a loaded machine the
	// daemon may report the exit late. The watch ends at the exit.
	const settle = 5 * time.Second
	_, err = e.m.Resume(ctx, slug, bottle.ResumeRequest{Resume: bottle.ResumeOptions{Replace: true, Settle: settle}})
	var ee *bottle.ExitedError
	if !errors.As(err, &ee) {
		t.Fatalf("resume of a bottle whose command exits: %v, want an ExitedError", err)
	}
	if ee.Code != 3 || !strings.Contains(err.Error(), "the base image CMD ran and exits") || !strings.Contains(err.Error(), "exit code 3") {
		t.Errorf("error lacks the exit code or the output: %v", err)
	}
	after, err := e.store.Resolve(ctx, slug)
	if err != nil || after.Digest != before.Digest {
		t.Errorf("snapshot changed: %v %v -> %v", err, before.Digest, after.Digest)
	}
	if got, _ := e.home.CommittedImage(slug); got != committed {
		t.Errorf("committed-image changed: %q -> %q", committed, got)
	}
	// Through the CLI: exit status non-zero, message printed.
	cmdErr := runCLIErr(e, "resume", slug, "--replace", "--settle", settle.String())
	if cmdErr == nil || !strings.Contains(cmdErr.Error(), "exited right after it started") {
		t.Errorf("bb resume of an exiting bottle: %v", cmdErr)
	}
}

func runCLIErr(e *env, args ...string) error {
	var out bytes.Buffer
	cmd := cli.New()
	cmd.SetArgs(append([]string{"--home", e.home.Dir, "--store", e.store.Root()}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(""))
	return cmd.ExecuteContext(context.Background())
}
