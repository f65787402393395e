package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bot-bottle/bb/oci"
)

// c8dSave is a daemon with containerd's image store whose image save is
// an OCI layout of the image's blobs as stored: a gzip layer, the
// config, and the Docker manifest that is the image's target (its ID).
type c8dSave struct {
	Client
	blobs map[v1.Hash][]byte
	saves int
}

func (f *c8dSave) Info(context.Context) (system.Info, error) {
	return system.Info{DriverStatus: [][2]string{{"driver-type", containerdSnapshotter}}}, nil
}

func (f *c8dSave) ImageSave(context.Context, []string, ...client.ImageSaveOption) (io.ReadCloser, error) {
	f.saves++
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	put := func(name string, b []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: 0o444})
		_, _ = tw.Write(b)
	}
	for h, b := range f.blobs {
		put("blobs/sha256/"+h.Hex, b)
	}
	put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

// TestBaseOnContainerdStore: the base image of a bottle on containerd's
// image store (ID = manifest digest, gzip layers in its save) is
// ingested once; its config is then found through the stored manifest,
// and after the manifest is gone, through the snapshot that names it.
func TestBaseOnContainerdStore(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := random.Layer(512, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := l.DiffID()
	rc, _ := l.Compressed()
	lb, _ := io.ReadAll(rc)
	rc.Close()
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", Created: v1.Time{Time: time.Unix(1700000000, 0).UTC()},
		Config: v1.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"sh"}}, RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}}
	cb, _ := json.Marshal(cfg)
	ch, _, _ := v1.SHA256(bytes.NewReader(cb))
	lh, _, _ := v1.SHA256(bytes.NewReader(lb))
	man := v1.Manifest{SchemaVersion: 2, MediaType: types.DockerManifestSchema2,
		Config: v1.Descriptor{MediaType: types.DockerConfigJSON, Digest: ch, Size: int64(len(cb))},
		Layers: []v1.Descriptor{{MediaType: types.DockerLayer, Digest: lh, Size: int64(len(lb))}}}
	mb, _ := json.Marshal(man)
	mh, _, _ := v1.SHA256(bytes.NewReader(mb))
	f := &c8dSave{blobs: map[v1.Hash][]byte{lh: lb, ch: cb, mh: mb}}
	r := &Runtime{Client: f, Store: s}
	ii := image.InspectResponse{ID: mh.String(), Architecture: "amd64", Os: "linux", Created: cfg.Created.Format(time.RFC3339Nano)}
	ii.RootFS.Layers = []string{diffID.String()}
	if err := json.Unmarshal([]byte(`{"Config":{"Env":["PATH=/bin"],"Cmd":["sh"]}}`), &ii); err != nil {
		t.Fatal(err)
	}

	layers, got, err := r.baseLayers(ctx, f, ii, storedBase{})
	if err != nil {
		t.Fatal(err)
	}
	if cf := got.cf; len(layers) != 1 || layers[0].DiffID != diffID || cf == nil || !sameDiffIDs(cf.RootFS.DiffIDs, ii.RootFS.Layers) || got.digest != ch {
		t.Fatalf("base layers %+v, config %+v (%s)", layers, cf, got.digest)
	}
	// A second commit, as Prepare does it: the stored config first.
	var again storedBase
	if again.cf, again.digest = r.storedConfigDigest(ctx, ii); again.digest != ch {
		t.Fatalf("the base config is %s, want %s", again.digest, ch)
	}
	if _, _, err := r.baseLayers(ctx, f, ii, again); err != nil || f.saves != 1 {
		t.Fatalf("a second commit: %v, %d saves", err, f.saves)
	}

	// GC took the manifest; a snapshot names the base config.
	if err := os.Remove(s.BlobPath(mh)); err != nil {
		t.Fatal(err)
	}
	if cf, _ := r.storedConfigDigest(ctx, ii); cf != nil {
		t.Fatal("a base config found with neither its manifest nor a snapshot naming it")
	}
	snap := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: man.Config, Layers: man.Layers,
		Annotations: map[string]string{oci.BaseConfigAnnotation: ch.String()}}
	sb, _ := json.Marshal(snap)
	sd, err := s.PutBytes(ctx, types.OCIManifestSchema1, sb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "c8d-base", sd); err != nil {
		t.Fatal(err)
	}
	if _, d := r.storedConfigDigest(ctx, ii); d != ch {
		t.Fatalf("after GC the base config is %q, want %s", d, ch)
	}
	// Another config with the same layers is not taken for it.
	ii.Created = "2001-01-01T00:00:00Z"
	if cf, _ := r.storedConfigDigest(ctx, ii); cf != nil {
		t.Fatal("a config whose created time differs was taken for the base's")
	}
}
