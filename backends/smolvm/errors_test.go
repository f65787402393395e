package smolvm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	bbdir "github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/packserve"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestRoundTripCp(t *testing.T) {
	backendtest.RoundTripWith(t, newHarness(t), backendtest.Case{
		Commit:  bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: smolvm.MethodCp}},
		BigFile: 4 << 20,
	})
}

func lastCreatedBy(t *testing.T, e *backendtest.Env, slug string) string {
	t.Helper()
	ins, err := e.Manager.Inspect(context.Background(), slug)
	if err != nil {
		t.Fatal(err)
	}
	return ins.Config.History[len(ins.Config.History)-1].CreatedBy
}

// TestCpLeavesNothing: the tar copied out of the guest is removed from
// the guest and from the host.
func TestCpLeavesNothing(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "cp", testimage.Options{})
	if _, err := e.Manager.Commit(context.Background(), "cp", bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: smolvm.MethodCp}}); err != nil {
		t.Fatal(err)
	}
	if got := lastCreatedBy(t, e, "cp"); got != "bb commit (smolvm cp tar)" {
		t.Errorf("history says %q", got)
	}
	left, _ := filepath.Glob(filepath.Join(h.Tree(t, "cp"), "var/tmp/.bb-commit-*"))
	hostLeft, _ := filepath.Glob(filepath.Join(e.Home.Dir, "tmp", "*"))
	if len(left)+len(hostLeft) > 0 {
		t.Errorf("left behind: guest %v, host %v", left, hostLeft)
	}
}

// TestFallbackToCp: when exec -i does not work, commit copies the tar out
// of the guest instead.
func TestFallbackToCp(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "fallback", testimage.Options{})
	t.Setenv("BB_STANDIN_SMOLVM_NO_STDIN", "1")
	if _, err := e.Manager.Commit(context.Background(), "fallback", bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := lastCreatedBy(t, e, "fallback"); got != "bb commit (smolvm cp tar)" {
		t.Errorf("history says %q", got)
	}
}

func TestCLINotOnPath(t *testing.T) {
	rt := &smolvm.Runtime{Home: state.Home{Dir: t.TempDir()}, Binary: "smolvm-not-installed"}
	_, err := rt.List(context.Background())
	if !errors.Is(err, smolvm.ErrNoCLI) {
		t.Fatalf("err = %v, want ErrNoCLI", err)
	}
	for _, want := range []string{"PATH", "sh -lc", "BB_SMOLVM_BIN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func checkNothingStored(t *testing.T, e *backendtest.Env, slug string) {
	t.Helper()
	if ents, err := snapshot.List(context.Background(), e.Store, slug); err != nil || len(ents) > 0 {
		t.Errorf("a failed commit left %d snapshots (%v)", len(ents), err)
	}
	if c, _ := e.Home.CommittedImage(slug); c != "" {
		t.Errorf("a failed commit recorded %q", c)
	}
}

func TestCommitErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	t.Run("NotRunning", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "stopped", testimage.Options{})
		mustCLI(t, "machine", "stop", "--name", bottle.Name("stopped"))
		_, err := e.Manager.Commit(ctx, "stopped", bottle.CommitOptions{})
		if !errors.Is(err, bottle.ErrNotRunning) {
			t.Fatalf("err = %v, want ErrNotRunning", err)
		}
	})
	t.Run("NoBottle", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		e.Home.WriteMetadata("gone", state.Metadata{Identity: "gone", Backend: bottle.Smolmachines})
		if _, err := e.Manager.Commit(ctx, "gone", bottle.CommitOptions{}); !errors.Is(err, bottle.ErrNoBottle) {
			t.Fatalf("err = %v, want ErrNoBottle", err)
		}
	})
	t.Run("InteractiveSession", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "busy", testimage.Options{})
		if err := os.WriteFile(filepath.Join(h.MachineDir("busy"), "interactive-session"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := e.Manager.Commit(ctx, "busy", bottle.CommitOptions{})
		if !errors.Is(err, smolvm.ErrExecUnavailable) || !strings.Contains(err.Error(), "interactive session") {
			t.Fatalf("err = %v", err)
		}
		checkNothingStored(t, e, "busy")
	})
	t.Run("NoTar", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "notar", testimage.Options{NoTar: true})
		_, err := e.Manager.Commit(ctx, "notar", bottle.CommitOptions{})
		if err == nil || !strings.Contains(err.Error(), "has no tar") {
			t.Fatalf("err = %v", err)
		}
		checkNothingStored(t, e, "notar")
	})
	t.Run("BusyBoxTar", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "bbtar", testimage.Options{BusyboxTar: true})
		_, err := e.Manager.Commit(ctx, "bbtar", bottle.CommitOptions{})
		if err == nil || !strings.Contains(err.Error(), "BusyBox") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("PackFails", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "nopack", testimage.Options{})
		res, err := e.Manager.Commit(ctx, "nopack", bottle.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		old, err := os.ReadFile(res.Committed)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Exec(t, "nopack", nil, "sh", "-c", "echo more > /home/node/more"); err != nil {
			t.Fatal(err)
		}
		e.Manager.Runtimes[bottle.Smolmachines] = &smolvm.Runtime{Home: e.Home, Pack: pack.Options{Serve: packserve.NoBlobs}}
		_, err = e.Manager.Commit(ctx, "nopack", bottle.CommitOptions{})
		var pe *pack.Error
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), "failed to pull image") || !strings.Contains(err.Error(), "BLOB_UNKNOWN") {
			t.Fatalf("err = %v; want smolvm's stderr", err)
		}
		if now, err := os.ReadFile(res.Committed); err != nil || !bytes.Equal(now, old) {
			t.Errorf("a failed pack changed the previous artifact (%v)", err)
		}
		if c, _ := e.Home.CommittedImage("nopack"); c != res.Committed {
			t.Errorf("committed-image = %q", c)
		}
		if cur, _ := e.Store.Resolve(ctx, "nopack"); cur.Digest != res.Snapshot.Manifest.Digest {
			t.Errorf("the failed commit replaced the current snapshot")
		}
		if left, _ := filepath.Glob(res.Committed + "*.bb-pack*"); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}

// TestExecCap: the stand-in caps captured exec output at 11 MiB as smolvm
// does; only -i without -t relays all of it.
func TestExecCap(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "cap", testimage.Options{})
	big := make([]byte, 12<<20)
	rand.Read(big)
	if _, err := h.Exec(t, "cap", bytes.NewReader(big), "sh", "-c", "cat > /big"); err != nil {
		t.Fatal(err)
	}
	name := bottle.Name("cap")
	for _, flags := range [][]string{nil, {"--stream"}, {"-i", "-t"}} {
		args := append(append([]string{"machine", "exec", "--name", name}, flags...), "--", "cat", "/big")
		_, err := cli(t, nil, args...)
		if err == nil || !strings.Contains(err.Error(), "exceeded 11534336 bytes") {
			t.Errorf("exec %v of 12 MiB: %v", flags, err)
		}
	}
	out, err := cli(t, nil, "machine", "exec", "--name", name, "-i", "--", "cat", "/big")
	if err != nil || !bytes.Equal(out, big) {
		t.Fatalf("exec -i returned %d bytes (%v), want the file's %d", len(out), err, len(big))
	}
}

// TestRemapOwners: older smolvm packs re-owned every file to the host
// user; /tmp and /var/tmp still come back empty and root:root 1777.
func TestRemapOwners(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "remap", testimage.Options{})
	backendtest.Change(t, h, "remap", 1<<20)
	t.Setenv("BB_STANDIN_SMOLVM_REMAP_OWNER", "4242")
	res, err := e.Manager.Commit(ctx, "remap", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.Remove(t, "remap")
	if _, err := e.Manager.Resume(ctx, "remap", bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	root := h.Tree(t, "remap")
	fi, err := os.Stat(filepath.Join(root, "home/node/work/big.bin"))
	if err != nil || fi.Sys().(*syscall.Stat_t).Uid != 4242 {
		t.Fatalf("the pack did not re-own files: %v %v", fi, err)
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		fi, err := os.Stat(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		ents, _ := os.ReadDir(filepath.Join(root, d))
		if st.Uid != 0 || st.Gid != 0 || fi.Mode()&os.ModeSticky == 0 || fi.Mode().Perm() != 0o777 || len(ents) > 0 {
			t.Errorf("/%s: %v %d:%d, %d entries", d, fi.Mode(), st.Uid, st.Gid, len(ents))
		}
	}
	_ = res
}

func TestCreateNeedsNameFlag(t *testing.T) {
	newHarness(t)
	_, err := cli(t, nil, "machine", "create", "bot-bottle-x", "--from", "/nonexistent.smolmachine")
	if err == nil || !strings.Contains(err.Error(), "--name") {
		t.Fatalf("positional machine name: %v", err)
	}
}

// bootFrom packs a snapshot of dir whose config is cfg with the stand-in
// (served by bb's registry) and boots bot-bottle-<slug> from it, as the
// launcher boots a bottle from its image.
func bootFrom(t *testing.T, slug, dir string, cfg v1.Config) {
	t.Helper()
	ctx := context.Background()
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := snaptest.Commit(ctx, s, snapshot.Request{Slug: slug, Source: &bbdir.Source{Dir: dir}, Base: snapshot.Base{Config: &v1.ConfigFile{Config: cfg}}}, -1)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "base")
	art, err := pack.Pack(ctx, s, res.Manifest, slug, out, pack.Options{Serve: packserve.Serve})
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "machine", "create", "--name", bottle.Name(slug), "--from", art)
	mustCLI(t, "machine", "start", "--name", bottle.Name(slug))
}

// TestSnapshotConfig: smolvm reports a machine's entrypoint and command
// but no image config, so a first snapshot keeps only PATH of the VM's
// environment (which may hold tokens), all of it with --keep-env, and a
// later snapshot builds on the previous one's config.
func TestSnapshotConfig(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	bootFrom(t, "cfg", backendtest.BaseRootfs(t, testimage.Options{}), v1.Config{
		Env: []string{"PATH=/usr/bin:/bin", "AGENT_MODE=careful"}, Cmd: []string{"/bin/sleep", "infinity"},
	})
	defer h.Remove(t, "cfg")
	e.Home.WriteMetadata("cfg", state.Metadata{Identity: "cfg", Backend: bottle.Smolmachines})
	commit := func(keepEnv bool) v1.Config {
		t.Helper()
		if _, err := e.Manager.Commit(context.Background(), "cfg", bottle.CommitOptions{NoLoad: true, Prepare: bottle.PrepareOptions{KeepEnv: keepEnv}}); err != nil {
			t.Fatal(err)
		}
		ins, err := e.Manager.Inspect(context.Background(), "cfg")
		if err != nil {
			t.Fatal(err)
		}
		return ins.Config.Config
	}
	c := commit(false)
	if !slices.Equal(c.Env, []string{"PATH=/usr/bin:/bin"}) || !slices.Equal(c.Cmd, []string{"/bin/sleep", "infinity"}) || c.User != "" {
		t.Errorf("first snapshot config: env %v cmd %v user %q; want PATH only and the machine's command", c.Env, c.Cmd, c.User)
	}
	if c = commit(true); !slices.Contains(c.Env, "AGENT_MODE=careful") {
		t.Errorf("--keep-env snapshot config: env %v", c.Env)
	}
	if c = commit(false); !slices.Contains(c.Env, "AGENT_MODE=careful") || !slices.Equal(c.Cmd, []string{"/bin/sleep", "infinity"}) {
		t.Errorf("a later snapshot does not build on the previous one's config: env %v cmd %v", c.Env, c.Cmd)
	}
}

// TestNonRootExec: machine exec runs as the image's USER; bb refuses to
// snapshot a VM it cannot read as root.
func TestNonRootExec(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	bootFrom(t, "node", backendtest.BaseRootfs(t, testimage.Options{}), v1.Config{User: "node"})
	defer h.Remove(t, "node")
	e.Home.WriteMetadata("node", state.Metadata{Identity: "node", Backend: bottle.Smolmachines})
	_, err := e.Manager.Commit(context.Background(), "node", bottle.CommitOptions{})
	if err == nil || !strings.Contains(err.Error(), "runs as uid 1000") {
		t.Fatalf("err = %v", err)
	}
}
