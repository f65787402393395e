package docker_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/state"
)

// needDocker returns a client of the daemon, skipping the test when there
// is none, or failing it when CI is set.
func needDocker(t testing.TB) *client.Client {
	t.Helper()
	c, err := docker.NewClient()
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Docker daemon is needed (CI is set): %v", err)
		}
		t.Skipf("no Docker daemon: %v", err)
	}
	return c
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newSlug returns a slug no other test run uses.
func newSlug(what string) string { return "t" + randHex(4) + "-" + what }

// buildImage builds a test image (testimage.BuildRootfs, then edit) and
// loads it into the daemon under a fresh name, removed after the test.
func buildImage(t testing.TB, c *client.Client, opts testimage.Options, edit func(dir string) error) string {
	t.Helper()
	dir := t.TempDir()
	if err := testimage.BuildRootfs(dir, opts); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		if err := edit(dir); err != nil {
			t.Fatal(err)
		}
	}
	return loadImage(t, c, dir)
}

// loadImage loads an image of the root filesystem in dir into the daemon
// under a fresh name, removed after the test. It first adds a file unique
// to this image to dir, so that the image's layer is its own.
func loadImage(t testing.TB, c *client.Client, dir string) string {
	t.Helper()
	return loadImageConfig(t, c, dir, testimage.Config())
}

// loadImageConfig is loadImage with another image config.
func loadImageConfig(t testing.TB, c *client.Client, dir string, config v1.Config) string {
	t.Helper()
	ctx := context.Background()
	if err := os.WriteFile(filepath.Join(dir, "etc", "image-id"), []byte(randHex(8)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := testimage.HostImageConfig(ctx, dir, t.TempDir(), config)
	if err != nil {
		t.Fatal(err)
	}
	ref := "bb-test-" + randHex(6) + ":latest"
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	resp, err := c.ImageLoad(ctx, pr, client.ImageLoadWithQuiet(true))
	if err != nil {
		pr.CloseWithError(err)
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

func removeImage(c *client.Client, ref string) {
	_, _ = c.ImageRemove(context.Background(), ref, image.RemoveOptions{Force: true, PruneChildren: true})
}

// startBottle runs bot-bottle-<slug> from img with no network; the
// container and its committed image are removed after the test.
func startBottle(t testing.TB, c *client.Client, img, slug string) string {
	t.Helper()
	ctx := context.Background()
	nm := bottle.Name(slug)
	t.Cleanup(func() {
		_ = c.ContainerRemove(context.Background(), nm, container.RemoveOptions{Force: true})
		removeImage(c, state.CommittedRef(slug))
	})
	cr, err := c.ContainerCreate(ctx, &container.Config{Image: img}, &container.HostConfig{NetworkMode: "none"}, nil, nil, nm)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerStart(ctx, cr.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return nm
}

// sh runs a shell script in a container as root and fails the test if it
// fails.
func sh(t testing.TB, c *client.Client, ctr, script string) string {
	t.Helper()
	out, errOut, code, err := execIn(c, ctr, nil, []string{"/bin/sh", "-c", script})
	if err != nil || code != 0 {
		t.Fatalf("sh -c %q in %s: %v, exit %d: %s %s", script, ctr, err, code, out, errOut)
	}
	return out
}

// execIn runs cmd in a container as root, with stdin (nil for none), and
// returns its stdout, stderr and exit status.
func execIn(c *client.Client, ctr string, stdin io.Reader, cmd []string) (string, string, int, error) {
	ctx := context.Background()
	ex, err := c.ContainerExecCreate(ctx, ctr, container.ExecOptions{User: "0", Cmd: cmd, AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", "", 0, err
	}
	hj, err := c.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", "", 0, err
	}
	defer hj.Close()
	if stdin != nil {
		go func() {
			if _, err := io.Copy(hj.Conn, stdin); err == nil {
				_ = hj.CloseWrite()
			}
		}()
	}
	var out, errOut bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errOut, hj.Reader); err != nil {
		return "", "", 0, err
	}
	// The output ended; the daemon may record the exit a moment later
	// (longer on a loaded machine).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ins, err := c.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return "", "", 0, err
		}
		if !ins.Running {
			return out.String(), errOut.String(), ins.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return "", "", 0, fmt.Errorf("exec in %s did not finish", ctr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// excluded are the paths a snapshot leaves out, and what the runtime
// adds to every container.
var excluded = fstree.Under("proc", "sys", "dev", "run", "tmp", "var/tmp", "etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv")

// tree records a container's root filesystem, excluded paths aside.
func tree(t testing.TB, c *client.Client, ctr string) map[string]fstree.Entry {
	t.Helper()
	tr, err := fstree.Walk(rootDir(t, c, ctr), excluded)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// rootDir returns a directory holding a container's root filesystem: the
// daemon's overlay mount when this process can read it, else an export
// extracted into a temporary directory.
func rootDir(t testing.TB, c *client.Client, ctr string) string {
	t.Helper()
	ctx := context.Background()
	ci, err := c.ContainerInspect(ctx, ctr)
	if err != nil {
		t.Fatal(err)
	}
	if md := ci.GraphDriver.Data["MergedDir"]; md != "" && os.Geteuid() == 0 {
		if _, err := os.Stat(filepath.Join(md, "etc")); err == nil {
			return md
		}
	}
	rc, err := c.ContainerExport(ctx, ctr)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	dir := t.TempDir()
	if err := rootfs.Extract(ctx, rc, dir, rootfs.Options{NoChown: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mutate makes the changes the round trip must carry: a nested tree, 50
// MB of random bytes, a symlink, a hard link, a setuid file of another
// uid, an empty directory, and a deleted file of the base image.
const mutate = `set -e
mkdir -p /home/node/work/a/b/c
echo hello > /home/node/work/a/b/c/deep.txt
dd if=/dev/urandom of=/home/node/work/random.bin bs=1048576 count=50 2>/dev/null
ln -s a/b/c/deep.txt /home/node/work/link
ln /home/node/work/random.bin /home/node/work/random.hard
echo suid > /home/node/work/suid
chown 1000:1000 /home/node/work/suid
chmod 4755 /home/node/work/suid
mkdir /home/node/work/empty
rm /etc/base-file
`

// env is one test's home, store, runtime and manager.
type env struct {
	home  state.Home
	store *oci.Store
	rt    *docker.Runtime
	m     *bottle.Manager
	logs  *logs
}

func newEnv(t *testing.T, c docker.Client) *env {
	t.Helper()
	return openEnv(t, c, state.Home{Dir: t.TempDir()})
}

// reopen is e as the next bb process sees it: the same home and store
// directory, nothing kept in memory.
func (e *env) reopen(t *testing.T, c docker.Client) *env {
	t.Helper()
	return openEnv(t, c, e.home)
}

// ageBlobs makes every blob of s look older than GC's grace period.
func ageBlobs(t *testing.T, s *oci.Store) {
	t.Helper()
	old := time.Now().Add(-2 * oci.GCGrace)
	dir := filepath.Join(s.Root(), "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.Chtimes(filepath.Join(dir, e.Name()), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

func openEnv(t *testing.T, c docker.Client, home state.Home) *env {
	t.Helper()
	s, err := oci.Open(home.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	lg := &logs{t: t}
	log := slog.New(lg)
	rt := &docker.Runtime{Client: c, Store: s, Network: "none", Logger: log}
	return &env{home: home, store: s, rt: rt, logs: lg,
		m: &bottle.Manager{Home: home, Store: s, Runtimes: map[string]bottle.Runtime{bottle.Docker: rt}, Logger: log}}
}

// logs is a slog.Handler that keeps messages for assertions.
type logs struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.lines = append(l.lines, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

func (l *logs) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.lines {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

func (l *logs) reset() {
	l.mu.Lock()
	l.lines = nil
	l.mu.Unlock()
}

func (l *logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// storeState is what a failed commit must leave as it was.
type storeState struct {
	index     string
	blobs     []string
	committed string
	imageID   string
}

func snapshotState(t *testing.T, c *client.Client, e *env, slug string) storeState {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(e.store.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(e.store.Root(), "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	st := storeState{index: string(idx)}
	for _, d := range ents {
		st.blobs = append(st.blobs, d.Name())
	}
	st.committed, _ = e.home.CommittedImage(slug)
	if ii, err := c.ImageInspect(context.Background(), state.CommittedRef(slug)); err == nil {
		st.imageID = ii.ID
	}
	return st
}

func checkUnchanged(t *testing.T, c *client.Client, e *env, slug string, before storeState) {
	t.Helper()
	after := snapshotState(t, c, e, slug)
	if after.index != before.index {
		t.Errorf("index.json changed:\n%s\n->\n%s", before.index, after.index)
	}
	if strings.Join(after.blobs, " ") != strings.Join(before.blobs, " ") {
		t.Errorf("blobs changed:\n%v\n->\n%v", before.blobs, after.blobs)
	}
	if after.committed != before.committed {
		t.Errorf("committed-image changed: %q -> %q", before.committed, after.committed)
	}
	if after.imageID != before.imageID {
		t.Errorf("%s moved: %s -> %s", state.CommittedRef(slug), before.imageID, after.imageID)
	}
	ents, err := os.ReadDir(filepath.Join(e.store.Root(), "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("temp files left in the store's ingest dir: %v", ents)
	}
}
