package container_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

func TestRoundTripExport(t *testing.T) {
	backendtest.RoundTripWith(t, newHarness(t), backendtest.Case{
		Commit:  bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: container.MethodExport}},
		BigFile: 4 << 20,
	})
}

func TestCLINotOnPath(t *testing.T) {
	rt := &container.Runtime{Home: state.Home{Dir: t.TempDir()}, Binary: "container-not-installed"}
	_, err := rt.Inspect(context.Background(), "x")
	if !errors.Is(err, container.ErrNoCLI) {
		t.Fatalf("err = %v, want ErrNoCLI", err)
	}
	for _, want := range []string{"PATH", "sh -lc", "BB_CONTAINER_BIN"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestCommitErrors(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	t.Run("NoBottle", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		if err := e.Home.WriteMetadata("gone", state.Metadata{Identity: "gone", Backend: bottle.MacosContainer}); err != nil {
			t.Fatal(err)
		}
		_, err := e.Manager.Commit(ctx, "gone", bottle.CommitOptions{})
		if !errors.Is(err, bottle.ErrNoBottle) {
			t.Fatalf("err = %v, want ErrNoBottle", err)
		}
	})
	t.Run("StoppedIsDeleted", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "stopped", testimage.Options{})
		mustCLI(t, "stop", bottle.Name("stopped"))
		_, err := e.Manager.Commit(ctx, "stopped", bottle.CommitOptions{})
		if !errors.Is(err, bottle.ErrNoBottle) || !strings.Contains(err.Error(), "stopped container is deleted") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("NoTar", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "notar", testimage.Options{NoTar: true})
		_, err := e.Manager.Commit(ctx, "notar", bottle.CommitOptions{})
		if err == nil || !strings.Contains(err.Error(), "has no tar") || !strings.Contains(err.Error(), "--method export") {
			t.Fatalf("err = %v", err)
		}
		checkNothingStored(t, e, "notar")
		// container export needs no tar in the guest.
		res, err := e.Manager.Commit(ctx, "notar", bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: container.MethodExport}})
		if err != nil {
			t.Fatalf("commit --method export of a bottle without tar: %v", err)
		}
		if res.Committed != state.CommittedRef("notar") {
			t.Errorf("committed %q", res.Committed)
		}
	})
	t.Run("BusyBoxTar", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "bbtar", testimage.Options{BusyboxTar: true})
		_, err := e.Manager.Commit(ctx, "bbtar", bottle.CommitOptions{})
		if err == nil || !strings.Contains(err.Error(), "BusyBox") {
			t.Fatalf("err = %v", err)
		}
		checkNothingStored(t, e, "bbtar")
	})
	t.Run("UnknownMethod", func(t *testing.T) {
		e := backendtest.NewEnv(t, h)
		backendtest.StartBottle(t, h, e, "method", testimage.Options{})
		_, err := e.Manager.Commit(ctx, "method", bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: "cp"}})
		if err == nil || !strings.Contains(err.Error(), "exec or export") {
			t.Fatalf("err = %v", err)
		}
	})
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

// TestLoadNameAnnotations: container image load takes the image's name
// from index.json; without the annotations container 1.2.2 loads it as
// untagged@<digest>, and bb refuses that result.
func TestLoadNameAnnotations(t *testing.T) {
	newHarness(t)
	img, err := testimage.HostImage(context.Background(), backendtest.BaseRootfs(t, testimage.Options{}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, ref string) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := container.WriteArchive(context.Background(), f, img, ref); err != nil {
			t.Fatal(err)
		}
		f.Close()
		return p
	}
	full := state.FullCommittedRef("named")
	out := mustCLI(t, "image", "load", "-i", write("named.tar", full))
	if err := container.CheckLoaded(out, full); err != nil {
		t.Fatalf("load with annotations: %v", err)
	}
	out = mustCLI(t, "image", "load", "-i", write("anon.tar", ""))
	if !strings.HasPrefix(string(out), "untagged@sha256:") {
		t.Fatalf("load without annotations printed %q", out)
	}
	err = container.CheckLoaded(out, full)
	if err == nil || !strings.Contains(err.Error(), container.AppleNameAnnotation) {
		t.Fatalf("bb accepted an unnamed load: %v", err)
	}
	mustCLI(t, "image", "inspect", "bot-bottle-committed-named:latest")
}

// TestLoadVerifiesArchive: the stand-in's image load checks digests and
// the layout files, like the real one.
func TestLoadVerifiesArchive(t *testing.T) {
	newHarness(t)
	img, err := testimage.HostImage(context.Background(), backendtest.BaseRootfs(t, testimage.Options{}), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var good bytes.Buffer
	if err := container.WriteArchive(context.Background(), &good, img, state.FullCommittedRef("v")); err != nil {
		t.Fatal(err)
	}
	rewrite := func(edit func(h *tar.Header, b []byte) []byte) string {
		tr := tar.NewReader(bytes.NewReader(good.Bytes()))
		var out bytes.Buffer
		tw := tar.NewWriter(&out)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			if b = edit(h, b); b == nil {
				continue
			}
			h.Size = int64(len(b))
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Write(b)
		}
		tw.Close()
		p := filepath.Join(t.TempDir(), "x.tar")
		os.WriteFile(p, out.Bytes(), 0o644)
		return p
	}
	corrupt := rewrite(func(h *tar.Header, b []byte) []byte {
		if strings.HasPrefix(h.Name, "blobs/") && len(b) > 1000 {
			b[500] ^= 0xff
		}
		return b
	})
	if _, err := cli(t, nil, "image", "load", "-i", corrupt); err == nil || !strings.Contains(err.Error(), "digest mismatch") {
		t.Errorf("load of a corrupted blob: %v", err)
	}
	noLayout := rewrite(func(h *tar.Header, b []byte) []byte {
		if h.Name == "oci-layout" {
			return nil
		}
		return b
	})
	if _, err := cli(t, nil, "image", "load", "-i", noLayout); err == nil || !strings.Contains(err.Error(), "oci-layout") {
		t.Errorf("load without oci-layout: %v", err)
	}
}

// TestLoadSkipsLoadedSnapshot: a second Load of the same snapshot
// does not load it again; Has follows the runtime.
func TestLoadSkipsLoadedSnapshot(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "twice", testimage.Options{})
	res, err := e.Manager.Commit(ctx, "twice", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rt := e.Manager.Runtimes[bottle.MacosContainer]
	loaded := mustCLI(t, "image", "inspect", res.Committed)
	if _, err := rt.Load(ctx, bottle.Snapshot{Slug: "twice", Store: e.Store, Manifest: res.Snapshot.Manifest}); err != nil {
		t.Fatal(err)
	}
	if again := mustCLI(t, "image", "inspect", res.Committed); !bytes.Equal(again, loaded) {
		t.Errorf("the snapshot was loaded again:\n%s\n%s", loaded, again)
	}
	if has, err := rt.Has(ctx, res.Committed); err != nil || !has {
		t.Fatalf("Has = %v, %v", has, err)
	}
	mustCLI(t, "image", "delete", res.Committed)
	if has, err := rt.Has(ctx, res.Committed); err != nil || has {
		t.Fatalf("Has after delete = %v, %v", has, err)
	}
	// The snapshot's tree is what the bottle had.
	before, _ := fstree.Walk(h.Tree(t, "twice"), backendtest.Excluded)
	h.Remove(t, "twice")
	if _, err := e.Manager.Resume(ctx, "twice", bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	after, _ := fstree.Walk(h.Tree(t, "twice"), backendtest.Excluded)
	if d := fstree.Diff(before, after); len(d) > 0 {
		t.Fatalf("differs: %v", d)
	}
}

// TestSnapshotConfig: the snapshot keeps the config of the image the
// container runs (container image inspect).
func TestSnapshotConfig(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "cfg", testimage.Options{})
	if _, err := e.Manager.Commit(context.Background(), "cfg", bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	ins, err := e.Manager.Inspect(context.Background(), "cfg")
	if err != nil {
		t.Fatal(err)
	}
	want := testimage.Config()
	got := ins.Config.Config
	if !slices.Equal(got.Env, want.Env) || !slices.Equal(got.Cmd, want.Cmd) || got.WorkingDir != want.WorkingDir || got.Labels["dev.bot-bottle.test"] != "base" {
		t.Errorf("snapshot config %+v, want the base image's %+v", got, want)
	}
	if ins.Manifest.Annotations["org.opencontainers.image.base.name"] != "docker.io/library/bb-test-base-cfg:latest" {
		t.Errorf("base image annotation: %v", ins.Manifest.Annotations)
	}
}

// TestSnapshotConfigImageGone: when the container's image was deleted,
// the config comes from its init process (command, working directory,
// PATH) and not from its environment.
func TestSnapshotConfigImageGone(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "gone", testimage.Options{})
	mustCLI(t, "image", "delete", "docker.io/library/bb-test-base-gone:latest")
	if _, err := e.Manager.Commit(context.Background(), "gone", bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	ins, err := e.Manager.Inspect(context.Background(), "gone")
	if err != nil {
		t.Fatal(err)
	}
	want := testimage.Config()
	got := ins.Config.Config
	if !slices.Equal(got.Cmd, want.Cmd) || got.WorkingDir != want.WorkingDir || !slices.Equal(got.Env, want.Env[:1]) {
		t.Errorf("snapshot config %+v; want Cmd %v, WorkingDir %q, Env %v", got, want.Cmd, want.WorkingDir, want.Env[:1])
	}
}
