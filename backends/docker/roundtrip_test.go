package docker_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/klauspost/pgzip"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

func TestMain(m *testing.M) {
	// bb resume run through the CLI creates containers without a network:
	// the test daemon may have no bridge.
	if os.Getenv("BB_DOCKER_NETWORK") == "" {
		os.Setenv("BB_DOCKER_NETWORK", "none")
	}
	os.Exit(m.Run())
}

// TestRoundTrip commits a bottle with changes of every kind, removes the
// container and its image from the daemon, resumes it from the store and
// compares the trees, for each way of streaming other than the default
// (TestBackendSuite's round trip: incremental, read on the host when
// the tests run as root).
func TestRoundTrip(t *testing.T) {
	c := needDocker(t)
	t.Parallel()
	for _, v := range []struct {
		name   string
		opts   bottle.PrepareOptions
		layers int
		viaCLI []string
		// changes is the Runtime's ChangeList.
		changes string
	}{
		{name: "guest-tar", layers: 2, changes: docker.ChangesDaemon},
		{name: "full", opts: bottle.PrepareOptions{Full: true}, layers: 1},
		{name: "export", opts: bottle.PrepareOptions{Method: "export"}, layers: 2},
		{name: "pause", opts: bottle.PrepareOptions{Pause: true}, layers: 2, viaCLI: []string{"--pause"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			base := buildImage(t, c, testimage.Options{}, nil)
			slug := newSlug(v.name)
			e := newEnv(t, c)
			e.rt.ChangeList = v.changes
			ctr := startBottle(t, c, base, slug)
			sh(t, c, ctr, mutate)
			before := tree(t, c, ctr)
			for _, p := range []string{"home/node/work/random.bin", "home/node/work/suid", "home/node/work/empty", "home/node/work/link"} {
				if _, ok := before[p]; !ok {
					t.Fatalf("%s missing before the commit", p)
				}
			}

			var digest string
			if v.viaCLI != nil {
				out := runCLI(t, e, append([]string{"commit", slug}, v.viaCLI...)...)
				if !strings.Contains(out, "bb resume "+slug) {
					t.Errorf("commit output lacks the resume hint:\n%s", out)
				}
				desc, err := e.store.Resolve(ctx, slug)
				if err != nil {
					t.Fatal(err)
				}
				digest = desc.Digest.String()
			} else {
				res, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Prepare: v.opts})
				if err != nil {
					t.Fatal(err)
				}
				digest = res.Digest
			}
			ci, err := c.ContainerInspect(ctx, ctr)
			if err != nil || !ci.State.Running || ci.State.Paused {
				t.Fatalf("the bottle does not run on after the commit: %v %+v", err, ci.State)
			}
			if got, _ := e.home.CommittedImage(slug); got != state.CommittedRef(slug) {
				t.Errorf("committed-image = %q", got)
			}
			if !e.home.Preserved(slug) {
				t.Errorf("no preserve marker")
			}
			h, _ := v1.NewHash(digest)
			man := checkStored(t, e.store, h)
			if len(man.Layers) != v.layers {
				t.Errorf("%d layers, want %d", len(man.Layers), v.layers)
			}

			if err := c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.ImageRemove(ctx, state.CommittedRef(slug), image.RemoveOptions{}); err != nil {
				t.Fatal(err)
			}
			e.logs.reset()
			if v.viaCLI != nil {
				runCLI(t, e, "resume", slug)
			} else if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
				t.Fatal(err)
			}
			// containerd's image store needs every layer in a load.
			if v.viaCLI == nil && !containerdStore(t, c) && !e.logs.contains("layers_sent=1") {
				t.Errorf("the load did not send one layer:\n%s", e.logs)
			}
			after := tree(t, c, ctr)
			if d := fstree.Diff(before, after); len(d) > 0 {
				t.Errorf("the resumed bottle differs:\n%s", strings.Join(d, "\n"))
			}
			out := sh(t, c, ctr, "stat -c '%a %u:%g' /tmp /var/tmp")
			if out != "1777 0:0\n1777 0:0\n" {
				t.Errorf("/tmp and /var/tmp: %q", out)
			}
		})
	}
}

// runCLI runs bb with the env's home and store.
func runCLI(t *testing.T, e *env, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := cli.New()
	cmd.SetArgs(append([]string{"--home", e.home.Dir, "--store", e.store.Root()}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(""))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bb %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errOut.String())
	}
	return out.String()
}

// checkStored validates a stored snapshot: go-containerregistry's
// validate.Image, and every layer's digest and diffID recomputed from
// the stored blob.
func checkStored(t *testing.T, s *oci.Store, h v1.Hash) *v1.Manifest {
	t.Helper()
	ctx := context.Background()
	img, err := s.Image(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Errorf("validate.Image: %v", err)
	}
	man, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.WorkingDir != "/home/node" || len(cf.Config.Cmd) == 0 || cf.Config.Labels["dev.bot-bottle.test"] != "base" {
		t.Errorf("the base config was not kept: %+v", cf.Config)
	}
	for i, l := range man.Layers {
		f, err := s.Blob(ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		blobHash, tarHash := sha256.New(), sha256.New()
		zr, err := pgzip.NewReader(io.TeeReader(f, blobHash))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tarHash, zr); err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(blobHash, f)
		f.Close()
		if got := "sha256:" + hex.EncodeToString(blobHash.Sum(nil)); got != l.Digest.String() {
			t.Errorf("layer %d: blob hashes to %s, recorded %s", i, got, l.Digest)
		}
		if got := "sha256:" + hex.EncodeToString(tarHash.Sum(nil)); got != cf.RootFS.DiffIDs[i].String() {
			t.Errorf("layer %d: tar hashes to %s, recorded diffID %s", i, got, cf.RootFS.DiffIDs[i])
		}
	}
	return man
}

// singleLinks forgets the hard link group of files that are alone in
// theirs: in a container, a file whose other link was deleted above the
// layer holding both still counts two links.
func singleLinks(tr map[string]fstree.Entry) map[string]fstree.Entry {
	n := map[string]int{}
	for _, e := range tr {
		if e.Inode != "" {
			n[e.Inode]++
		}
	}
	for p, e := range tr {
		if e.Inode != "" && n[e.Inode] == 1 {
			e.Inode = ""
			tr[p] = e
		}
	}
	return tr
}

// TestChain commits a bottle booted from a snapshot: the new snapshot
// builds on the stored layers without asking the daemon for them, an
// unchanged bottle gives the same diff layer, a deep base is flattened,
// and independent readers (skopeo, umoci) agree with the store.
func TestChain(t *testing.T) {
	c := needDocker(t)
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, func(dir string) error {
		for _, d := range []string{"opt/old/sub", "srv/keep", "srv/was-dir/sub"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for _, f := range []string{"opt/old/sub/f", "opt/old/g", "srv/keep/k", "srv/was-dir/sub/f", "srv/was-dir/g"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
				return err
			}
		}
		return os.Chown(filepath.Join(dir, "srv/keep"), 1000, 1000)
	})
	slug := newSlug("chain")
	e := newEnv(t, c)
	ctr := startBottle(t, c, base, slug)
	// A directory replaced by a new one, a directory replaced by a
	// symlink, a file changed below a directory of another owner, and a
	// new hard link pair.
	sh(t, c, ctr, `set -e
rm -rf /opt/old && mkdir -p /opt/old/new && echo n > /opt/old/new/n
rm -rf /srv/was-dir && ln -s /home/node /srv/was-dir
echo more >> /srv/keep/k
echo one > /home/node/one && ln /home/node/one /home/node/two`)
	res1, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !e.logs.contains("copying the base image's layers") {
		t.Errorf("the first commit did not ingest the base:\n%s", e.logs)
	}
	// The next process, past GC's grace period and a GC, finds the base
	// image in the store: its layers through the snapshot, its config
	// because the snapshot names it.
	e = e.reopen(t, c)
	ageBlobs(t, e.store)
	if _, err := e.store.GC(ctx); err != nil {
		t.Fatal(err)
	}
	res2, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res1.Layer.DiffID != res2.Layer.DiffID {
		t.Errorf("two commits of an unchanged bottle: diffIDs %s and %s", res1.Layer.DiffID, res2.Layer.DiffID)
	}
	if e.logs.contains("copying the base image's layers") {
		t.Errorf("the second commit ingested the base again:\n%s", e.logs)
	}

	// Resume from the snapshot and commit on top of it.
	before := tree(t, c, ctr)
	if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{}); !errors.Is(err, bottle.ErrRunning) {
		t.Fatalf("resume over a running bottle: %v", err)
	}
	if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{Resume: bottle.ResumeOptions{Replace: true}}); err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(before, tree(t, c, ctr)); len(d) > 0 {
		t.Fatalf("the resumed bottle differs:\n%s", strings.Join(d, "\n"))
	}
	sh(t, c, ctr, "echo three > /home/node/three && rm /home/node/one")
	e.logs.reset()
	res3, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	man := checkStored(t, e.store, res3.Snapshot.Manifest.Digest)
	if len(man.Layers) != 3 {
		t.Errorf("a snapshot of a resumed bottle has %d layers, want 3", len(man.Layers))
	}
	if e.logs.contains("copying the base image's layers") {
		t.Errorf("the snapshot's own layers were fetched from the daemon:\n%s", e.logs)
	}
	if !containerdStore(t, c) && !e.logs.contains("layers_sent=1") {
		t.Errorf("the load sent more than the new layer:\n%s", e.logs)
	}
	before = tree(t, c, ctr)

	// Independent readers of the store.
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed (CI is set)", tool)
			}
			t.Skipf("%s not installed", tool)
		}
	}
	if out, err := exec.Command("skopeo", "inspect", "oci:"+e.store.Root()+":"+slug).CombinedOutput(); err != nil {
		t.Errorf("skopeo inspect: %v\n%s", err, out)
	} else if !bytes.Contains(out, []byte(res3.Layer.Digest.String())) {
		t.Errorf("skopeo inspect does not list the new layer:\n%s", out)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack", "--image", e.store.Root() + ":" + slug, bundle}
	if os.Geteuid() != 0 {
		args = []string{"unpack", "--rootless", "--image", e.store.Root() + ":" + slug, bundle}
	}
	if out, err := exec.Command("umoci", args...).CombinedOutput(); err != nil {
		t.Errorf("umoci unpack: %v\n%s", err, out)
	} else if os.Geteuid() == 0 {
		got, err := fstree.Walk(filepath.Join(bundle, "rootfs"), excluded)
		if err != nil {
			t.Fatal(err)
		}
		delete(before, "etc/mtab") // the daemon adds it to every container
		if d := fstree.Diff(singleLinks(before), singleLinks(got)); len(d) > 0 {
			t.Errorf("umoci's unpack differs from the bottle:\n%s", strings.Join(d, "\n"))
		}
	}

	// A base at the depth limit is flattened.
	e.rt.MaxBaseLayers = 2
	if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{Resume: bottle.ResumeOptions{Replace: true}}); err != nil {
		t.Fatal(err)
	}
	res4, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if man := checkStored(t, e.store, res4.Snapshot.Manifest.Digest); len(man.Layers) != 1 {
		t.Errorf("a snapshot of a 3-layer base with MaxBaseLayers 2 has %d layers, want 1", len(man.Layers))
	}
}

// failingLoad is a daemon that refuses every load inside a 200 response.
type failingLoad struct{ *client.Client }

func (f failingLoad) ImageLoad(ctx context.Context, r io.Reader, _ ...client.ImageLoadOption) (image.LoadResponse, error) {
	_, _ = io.Copy(io.Discard, r)
	body := `{"status":"Loading layer"}` + "\n" + `{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}` + "\n"
	return image.LoadResponse{Body: io.NopCloser(strings.NewReader(body)), JSON: true}, nil
}

// TestFailures makes commits fail half way, at each stage that talks to
// the daemon, and checks each leaves everything as it was.
func TestFailures(t *testing.T) {
	c := needDocker(t)
	ctx := context.Background()
	stageOf := func(err error) snapshot.Stage {
		var se *snapshot.Error
		if errors.As(err, &se) {
			return se.Stage
		}
		return ""
	}

	t.Run("load refused, bottle removed mid-stream", func(t *testing.T) {
		t.Parallel()
		base := buildImage(t, c, testimage.Options{}, nil)
		slug := newSlug("fail")
		e := newEnv(t, c)
		ctr := startBottle(t, c, base, slug)
		sh(t, c, ctr, mutate)
		if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
			t.Fatal(err)
		}
		sh(t, c, ctr, "echo changed > /home/node/changed")
		st := snapshotState(t, c, e, slug)

		bad := &docker.Runtime{Client: failingLoad{c}, Store: e.store, Network: "none"}
		bm := &bottle.Manager{Home: e.home, Store: e.store, Runtimes: map[string]bottle.Runtime{bottle.Docker: bad}}
		_, err := bm.Commit(ctx, slug, bottle.CommitOptions{})
		if stageOf(err) != snapshot.StageLoad || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "failed at load") {
			t.Errorf("a refused load: %v", err)
		}
		checkUnchanged(t, c, e, slug, st)

		// Remove the bottle once 8 MiB have streamed; reading goes on
		// meanwhile, as it would when someone else removes it. Through
		// tar in the bottle, whose stream breaks.
		e.rt.ChangeList = docker.ChangesDaemon
		removed := make(chan error, 1)
		started := false
		_, err = e.m.Commit(ctx, slug, bottle.CommitOptions{Layer: layer.Options{Progress: func(n int64) {
			if n > 8<<20 && !started {
				started = true
				go func() { removed <- c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}) }()
			}
		}}})
		if !started {
			t.Fatalf("the stream ended before the bottle was removed: %v", err)
		}
		if rerr := <-removed; rerr != nil {
			t.Fatal(rerr)
		}
		t.Logf("removed mid-stream: %v", err)
		if stageOf(err) != snapshot.StageStream || !strings.Contains(err.Error(), "failed at stream") {
			t.Errorf("a bottle removed mid-stream: %v", err)
		}
		checkUnchanged(t, c, e, slug, st)
	})

	t.Run("bottle removed while read on the host", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("reading the overlay mount needs root")
		}
		t.Parallel()
		base := buildImage(t, c, testimage.Options{}, nil)
		slug := newSlug("hostrm")
		e := newEnv(t, c)
		ctr := startBottle(t, c, base, slug)
		sh(t, c, ctr, mutate)
		if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
			t.Fatal(err)
		}
		if !e.logs.contains("read from the overlay mount") && !e.logs.contains("listed the changes in the upper directory") {
			t.Errorf("the commit did not read the overlay mount:\n%s", e.logs)
		}
		sh(t, c, ctr, "echo changed > /home/node/changed")
		st := snapshotState(t, c, e, slug)
		// The bottle goes away while the stream waits: the files may still
		// be readable through open descriptors, or vanish; either way the
		// commit must fail.
		removed := false
		_, err := e.m.Commit(ctx, slug, bottle.CommitOptions{NoLoad: true, Layer: layer.Options{Progress: func(n int64) {
			if n > 8<<20 && !removed {
				removed = true
				if err := c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}); err != nil {
					t.Error(err)
				}
			}
		}}})
		if !removed {
			t.Fatalf("the stream ended before the bottle was removed: %v", err)
		}
		if stageOf(err) != snapshot.StageStream || !strings.Contains(err.Error(), "while it was read") {
			t.Errorf("a bottle removed while read: %v", err)
		}
		checkUnchanged(t, c, e, slug, st)
	})

	t.Run("tar exits 2", func(t *testing.T) {
		t.Parallel()
		base := buildImage(t, c, testimage.Options{}, func(dir string) error {
			if err := os.Rename(filepath.Join(dir, "usr/bin/tar"), filepath.Join(dir, "usr/bin/tar.real")); err != nil {
				return err
			}
			// GNU tar for --version; for the rest some output, then status
			// 2, or with /etc/tar-exit-1 the whole output, then status 1.
			script := "#!/bin/sh\ncase \"$1\" in --version) exec /usr/bin/tar.real --version;; esac\n" +
				"if [ -f /etc/tar-exit-1 ]; then /usr/bin/tar.real \"$@\"; echo 'tar: ./x: file changed as we read it' >&2; exit 1; fi\n" +
				"/usr/bin/tar.real \"$@\" | head -c 300000\necho 'tar: simulated read error' >&2\nexit 2\n"
			return os.WriteFile(filepath.Join(dir, "usr/bin/tar"), []byte(script), 0o755)
		})
		slug := newSlug("tar2")
		e := newEnv(t, c)
		e.rt.ChangeList = docker.ChangesDaemon // through tar in the bottle
		ctr := startBottle(t, c, base, slug)
		sh(t, c, ctr, "dd if=/dev/urandom of=/home/node/blob bs=1048576 count=2 2>/dev/null")
		if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: "export"}}); err != nil {
			t.Fatal(err)
		}
		st := snapshotState(t, c, e, slug)
		for _, full := range []bool{false, true} {
			_, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Prepare: bottle.PrepareOptions{Full: full}})
			if stageOf(err) != snapshot.StageStream || !strings.Contains(err.Error(), "status 2") || !strings.Contains(err.Error(), "simulated read error") {
				t.Errorf("tar exiting 2 (full %v): %v", full, err)
			}
			checkUnchanged(t, c, e, slug, st)
		}
		// Exit status 1 (a file changed while it was read) is a warning.
		sh(t, c, ctr, "touch /etc/tar-exit-1")
		res, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
		if err != nil {
			t.Fatalf("tar exiting 1: %v", err)
		}
		if w := strings.Join(res.Warnings, "\n"); !strings.Contains(w, "changed while") {
			t.Errorf("tar exiting 1 gave no warning: %q", w)
		}
	})

	for _, v := range []struct {
		name string
		opts testimage.Options
		want string
	}{
		{"busybox tar", testimage.Options{BusyboxTar: true}, "BusyBox"},
		{"no tar", testimage.Options{NoTar: true}, "has no tar"},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			base := buildImage(t, c, v.opts, nil)
			slug := newSlug("notar")
			e := newEnv(t, c)
			e.rt.ChangeList = docker.ChangesDaemon // through tar in the bottle
			startBottle(t, c, base, slug)
			_, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
			if err == nil || !strings.Contains(err.Error(), v.want) || !strings.Contains(err.Error(), "--method export") {
				t.Errorf("a bottle without GNU tar: %v", err)
			}
			if os.Geteuid() == 0 {
				// Read on the host, an incremental snapshot needs no tar.
				e.rt.ChangeList = docker.ChangesAuto
				if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
					t.Errorf("an incremental snapshot read on the host: %v", err)
				}
				e.rt.ChangeList = docker.ChangesDaemon
			}
			if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: "export"}}); err != nil {
				t.Errorf("--method export in a bottle without GNU tar: %v", err)
			}
		})
	}
}
