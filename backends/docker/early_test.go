package docker_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/docker/docker/api/types/container"
)

// earlyWork is a bottle's change for the early load: a file large enough
// that the stream is still on it when the first bytes are compressed, a
// file after it, a hard link, a symlink and a deleted file of the base.
const earlyWork = `set -e
mkdir -p /home/node/work/a/b
dd if=/dev/urandom of=/home/node/work/big.bin bs=1048576 count=12 2>/dev/null
ln /home/node/work/big.bin /home/node/work/big.hard
ln -s a/b /home/node/work/link
echo last > /home/node/work/zzz
rm /etc/base-file
`

// TestEarlyLoad: a commit read on the host loads the layer into the daemon
// while it is built; a bottle that changes meanwhile gets the usual load
// from the store; a commit that fails leaves the daemon as it was.
func TestEarlyLoad(t *testing.T) {
	c := needDocker(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("reading the overlay mount needs root")
		}
		t.Skip("reading the overlay mount needs root")
	}
	t.Parallel()
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, nil)
	slug := newSlug("early")
	e := newEnv(t, c)
	ctr := startBottle(t, c, base, slug)
	sh(t, c, ctr, earlyWork)
	before := tree(t, c, ctr)

	res, err := e.m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !e.logs.contains("sent while it was built") {
		t.Errorf("the commit did not load the layer while it was built:\n%s", e.logs)
	}
	ii, err := c.ImageInspect(ctx, res.Committed)
	if err != nil || ii.ID != res.Snapshot.Config.Digest.String() {
		t.Fatalf("image %s: %v %s, want %s", res.Committed, err, ii.ID, res.Snapshot.Config.Digest)
	}

	// A file of the plan grows (by more than its last tar block) once the layer is being compressed: the
	// early load is abandoned and the snapshot loaded from the store.
	e.logs.reset()
	grown := false
	res2, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Layer: layer.Options{Progress: func(int64) {
		if !grown {
			grown = true
			sh(t, c, ctr, "dd if=/dev/zero bs=1024 count=4 2>/dev/null >> /home/node/work/zzz")
		}
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if e.logs.contains("sent while it was built") || !e.logs.contains("loading the snapshot from the store") {
		t.Errorf("a bottle that changed during the commit was loaded early:\n%s", e.logs)
	}
	ii, err = c.ImageInspect(ctx, res2.Committed)
	if err != nil || ii.ID != res2.Snapshot.Config.Digest.String() {
		t.Fatalf("image %s: %v %s, want %s", res2.Committed, err, ii.ID, res2.Snapshot.Config.Digest)
	}
	sh(t, c, ctr, "echo last > /home/node/work/zzz")

	// The early-loaded image boots into the bottle's tree.
	if _, err := e.m.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(before, tree(t, c, ctr)); len(d) > 0 {
		t.Errorf("the resumed bottle differs:\n%s", strings.Join(d, "\n"))
	}

	// The bottle goes away mid-stream: the commit fails and the daemon
	// keeps the image it had.
	sh(t, c, ctr, "dd if=/dev/urandom of=/home/node/work/big2.bin bs=1048576 count=12 2>/dev/null")
	st := snapshotState(t, c, e, slug)
	removed := false
	_, err = e.m.Commit(ctx, slug, bottle.CommitOptions{Layer: layer.Options{Progress: func(n int64) {
		if !removed {
			removed = true
			if err := c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}); err != nil {
				t.Error(err)
			}
		}
	}}})
	var se *snapshot.Error
	if err == nil || !errors.As(err, &se) || se.Stage != snapshot.StageStream {
		t.Errorf("a bottle removed while read: %v", err)
	}
	checkUnchanged(t, c, e, slug, st)
}
