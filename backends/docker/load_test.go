package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// gzipRefusingLoad is a daemon whose load refuses gzip layers.
type gzipRefusingLoad struct {
	*client.Client
	refused, loaded int
}

func (g *gzipRefusingLoad) ImageLoad(ctx context.Context, r io.Reader, opts ...client.ImageLoadOption) (image.LoadResponse, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return image.LoadResponse{}, err
	}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if strings.HasSuffix(h.Name, "/layer.tar") {
			head := make([]byte, 2)
			if n, _ := io.ReadFull(tr, head); n == 2 && head[0] == 0x1f && head[1] == 0x8b {
				g.refused++
				return image.LoadResponse{JSON: true, Body: io.NopCloser(strings.NewReader(`{"errorDetail":{"message":"archive/tar: invalid tar header"}}`))}, nil
			}
		}
	}
	g.loaded++
	return g.Client.ImageLoad(ctx, bytes.NewReader(b), opts...)
}

// TestLoadFallsBackToUncompressed: a daemon that cannot read gzip
// layers gets them decompressed, and the image is the snapshot's.
func TestLoadFallsBackToUncompressed(t *testing.T) {
	c := needDocker(t)
	t.Parallel()
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, nil)
	slug := newSlug("gzload")
	e := newEnv(t, c)
	ctr := startBottle(t, c, base, slug)
	sh(t, c, ctr, "mkdir -p /home/node/w && echo one > /home/node/w/one && rm /etc/base-file")
	g := &gzipRefusingLoad{Client: c}
	// Through tar in the bottle: a host read would load the layer
	// uncompressed while it is built (see TestEarlyLoad).
	rt := &docker.Runtime{Client: g, Store: e.store, Network: "none", Logger: e.rt.Logger, ChangeList: docker.ChangesDaemon}
	m := &bottle.Manager{Home: e.home, Store: e.store, Runtimes: map[string]bottle.Runtime{bottle.Docker: rt}, Logger: e.rt.Logger}
	res, err := m.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g.refused != 1 || g.loaded != 1 || !e.logs.contains("sending them uncompressed") {
		t.Errorf("refused %d, loaded %d:\n%s", g.refused, g.loaded, e.logs)
	}
	ii, err := c.ImageInspect(ctx, res.Committed)
	// On containerd's image store the ID is a manifest digest (Load
	// checked the image's layers and config there).
	if err != nil || (ii.ID != res.Snapshot.Config.Digest.String() && !containerdStore(t, c)) {
		t.Fatalf("image %s: %v %s", res.Committed, err, ii.ID)
	}
	// The committed image boots into the same tree.
	before := tree(t, c, ctr)
	if err := c.ContainerRemove(ctx, ctr, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if after := tree(t, c, ctr); len(after) != len(before) || after["home/node/w/one"].SHA256 != before["home/node/w/one"].SHA256 {
		t.Errorf("the resumed bottle differs: %d entries, was %d", len(after), len(before))
	}
	if _, ok := tree(t, c, ctr)["etc/base-file"]; ok {
		t.Errorf("the deleted file is back")
	}
}
