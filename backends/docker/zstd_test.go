package docker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A snapshot whose layers are zstd (testdata/images/zstd-oci.tar, written
// by skopeo) loads into the daemon: Load decompresses every layer into
// the docker-archive it streams, so a daemon without zstd (Docker 20.10)
// gets plain tar.
func TestLoadZstdSnapshot(t *testing.T) {
	c := needDocker(t)
	ctx := context.Background()
	e := newEnv(t, c)
	slug := newSlug("zstd")
	res, err := e.m.ImportFile(ctx, "../../testdata/images/zstd-oci.tar", bottle.ImportOptions{As: slug, Backend: bottle.Docker})
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(res.Images[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := e.store.ReadBlob(ctx, h, oci.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil || len(m.Layers) == 0 || m.Layers[0].MediaType != types.OCILayerZStd {
		t.Fatalf("the golden zstd image has layers %+v (%v)", m.Layers, err)
	}
	ref, err := e.rt.Load(ctx, bottle.Snapshot{Slug: slug, Store: e.store, Manifest: v1.Descriptor{MediaType: m.MediaType, Digest: h, Size: int64(len(mb))}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeImage(c, ref) })
	name := "bb-" + slug
	if out, err := exec.Command("docker", "create", "--name", name, ref).CombinedOutput(); err != nil {
		t.Fatalf("docker create: %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
	out, err := exec.Command("docker", "cp", name+":/etc/hello.txt", "-").Output()
	if err != nil {
		t.Fatalf("docker cp: %v", err)
	}
	if len(out) == 0 || !bytes.Contains(out, []byte("hello from a golden image")) {
		t.Fatalf("docker cp of /etc/hello.txt gave %q", out)
	}
}
