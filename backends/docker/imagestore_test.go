package docker_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// c8dStore is a daemon with containerd's image store, as moby v28
// (daemon/containerd/image_exporter.go LoadImage, image_inspect.go) and
// containerd v2.1 (core/images/archive/importer.go ImportIndex) have
// it: a loaded docker-archive becomes a Docker manifest that containerd
// writes, the image ID is that manifest's digest, an image is found by
// name or by its manifest's digest (never by its config's), and an
// archive that leaves out a layer's file is refused. tamper, if set,
// edits what inspect shows (a failure to inject).
type c8dStore struct {
	docker.Client
	driverType string
	tamper     func(*image.InspectResponse)
	// unpackErr makes every load report a failed unpack in its stream.
	unpackErr bool

	mu     sync.Mutex
	byName map[string]digest.Digest
	byID   map[digest.Digest]image.InspectResponse
	loads  int
	sent   []int // layer files in each archive
}

func newC8dStore() *c8dStore {
	return &c8dStore{driverType: "io.containerd.snapshotter.v1", byName: map[string]digest.Digest{}, byID: map[digest.Digest]image.InspectResponse{}}
}

func (f *c8dStore) Info(context.Context) (system.Info, error) {
	return system.Info{Driver: "overlayfs", DriverStatus: [][2]string{{"driver-type", f.driverType}}}, nil
}

func (f *c8dStore) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := digest.Digest(ref), false
	if strings.HasPrefix(ref, "sha256:") {
		_, ok = f.byID[id]
	} else {
		id, ok = f.byName[ref]
	}
	if !ok {
		return image.InspectResponse{}, fmt.Errorf("no such image: %s: %w", ref, cerrdefs.ErrNotFound)
	}
	ii := f.byID[id]
	ii.RepoTags = nil
	for n, d := range f.byName {
		if d == id {
			ii.RepoTags = append(ii.RepoTags, n)
		}
	}
	if f.tamper != nil {
		f.tamper(&ii)
	}
	return ii, nil
}

func (f *c8dStore) ImageTag(_ context.Context, src, dst string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.byID[digest.Digest(src)]; !ok {
		return fmt.Errorf("no such image: %s: %w", src, cerrdefs.ErrNotFound)
	}
	f.byName[dst] = digest.Digest(src)
	return nil
}

func (f *c8dStore) ImageRemove(_ context.Context, id string, _ image.RemoveOptions) ([]image.DeleteResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byID, digest.Digest(id))
	return nil, nil
}

func (f *c8dStore) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (image.LoadResponse, error) {
	ii, tags, sent, err := importArchive(r)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	f.sent = append(f.sent, sent)
	msg := ""
	if err != nil {
		b, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": err.Error()}})
		msg = string(b)
	} else {
		f.byID[digest.Digest(ii.ID)] = ii
		for _, t := range tags {
			f.byName[t] = digest.Digest(ii.ID)
			msg += fmt.Sprintf(`{"stream":"Loaded image: %s\n"}`, t)
			if f.unpackErr {
				msg += fmt.Sprintf(`{"stream":"Error unpacking image %s: no space left on device\n"}`, t)
			}
		}
	}
	return image.LoadResponse{JSON: true, Body: io.NopCloser(strings.NewReader(msg))}, nil
}

// importArchive reads a docker-archive as containerd's importer does
// and returns the image's inspect, its tags and how many layer files the
// archive had.
func importArchive(r io.Reader) (image.InspectResponse, []string, int, error) {
	var ii image.InspectResponse
	files := map[string][]byte{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ii, nil, 0, err
		}
		if h.Typeflag == tar.TypeReg {
			if files[path.Clean(h.Name)], err = io.ReadAll(tr); err != nil {
				return ii, nil, 0, err
			}
		}
	}
	var mfsts []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &mfsts); err != nil || len(mfsts) != 1 {
		return ii, nil, 0, fmt.Errorf("manifest.json: %v", err)
	}
	m := mfsts[0]
	var cfg v1.ConfigFile
	cb := files[m.Config]
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return ii, nil, 0, fmt.Errorf("config: %v", err)
	}
	type desc struct {
		MediaType string        `json:"mediaType"`
		Digest    digest.Digest `json:"digest"`
		Size      int64         `json:"size"`
	}
	man := struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        desc   `json:"config"`
		Layers        []desc `json:"layers"`
	}{2, "application/vnd.docker.distribution.manifest.v2+json", desc{"application/vnd.docker.container.image.v1+json", digest.FromBytes(cb), int64(len(cb))}, nil}
	sent := 0
	for i, l := range m.Layers {
		b, ok := files[path.Clean(l)]
		if !ok {
			return ii, nil, sent, fmt.Errorf("failed to resolve layers: layer %q not found", l)
		}
		sent++
		mt, tarb := "application/vnd.docker.image.rootfs.diff.tar", b
		if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
			mt = "application/vnd.docker.image.rootfs.diff.tar.gzip"
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return ii, nil, sent, err
			}
			if tarb, err = io.ReadAll(zr); err != nil {
				return ii, nil, sent, err
			}
		}
		if i >= len(cfg.RootFS.DiffIDs) || fmt.Sprintf("sha256:%x", sha256.Sum256(tarb)) != cfg.RootFS.DiffIDs[i].String() {
			return ii, nil, sent, fmt.Errorf("layer %d: wrong diffID", i)
		}
		man.Layers = append(man.Layers, desc{mt, digest.FromBytes(b), int64(len(b))})
	}
	mb, _ := json.Marshal(man)
	target := ocispec.Descriptor{MediaType: man.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	// Inspect shows the config's fields as the config has them.
	cj, _ := json.Marshal(map[string]any{"Config": cfg.Config})
	if err := json.Unmarshal(cj, &ii); err != nil {
		return ii, nil, sent, err
	}
	ii.ID, ii.Descriptor, ii.Architecture, ii.Os = target.Digest.String(), &target, cfg.Architecture, cfg.OS
	ii.Created = cfg.Created.Format(time.RFC3339Nano)
	ii.RootFS.Type = "layers"
	for _, d := range cfg.RootFS.DiffIDs {
		ii.RootFS.Layers = append(ii.RootFS.Layers, d.String())
	}
	return ii, m.RepoTags, sent, nil
}

// putSnapshot writes an image of the layers base and n more random
// layers into s and returns it as a snapshot of slug.
func putSnapshot(t *testing.T, s *oci.Store, slug string, base []v1.Layer, n int, env string) (bottle.Snapshot, []v1.Layer) {
	t.Helper()
	ctx := context.Background()
	layers := append([]v1.Layer(nil), base...)
	for range n {
		l, err := random.Layer(256, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	cfg := v1.ConfigFile{Architecture: "amd64", OS: "linux", Created: v1.Time{Time: time.Now().UTC().Truncate(time.Second)},
		Config: v1.Config{Env: []string{env}, Cmd: []string{"/bin/sh"}, Labels: map[string]string{"bb": slug}}, RootFS: v1.RootFS{Type: "layers"}}
	man := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for _, l := range layers {
		d, _ := l.DiffID()
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, d)
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		desc, err := s.PutBytes(ctx, types.OCILayer, b)
		if err != nil {
			t.Fatal(err)
		}
		man.Layers = append(man.Layers, desc)
	}
	cb, _ := json.Marshal(cfg)
	cdesc, err := s.PutBytes(ctx, types.OCIConfigJSON, cb)
	if err != nil {
		t.Fatal(err)
	}
	man.Config = cdesc
	mb, _ := json.Marshal(man)
	mdesc, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		t.Fatal(err)
	}
	return bottle.Snapshot{Slug: slug, Store: s, Manifest: mdesc}, layers
}

// TestLoadContainerdStore: on a daemon with containerd's image store,
// whose image ID is a manifest digest, a load is taken for the snapshot
// it is, every layer is sent (that import needs them all), and a
// second Load of the same snapshot finds it under its name.
func TestLoadContainerdStore(t *testing.T) {
	ctx := context.Background()
	f := newC8dStore()
	e := newEnv(t, f)
	slug := newSlug("c8d")
	snap, layers := putSnapshot(t, e.store, slug, nil, 2, "A=1")
	ref, err := e.rt.Load(ctx, snap)
	if err != nil {
		t.Fatalf("a load on the containerd store failed: %v", err)
	}
	if ref != state.CommittedRef(slug) {
		t.Fatalf("Load gave %s", ref)
	}
	if _, err := e.rt.Load(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if f.loads != 1 {
		t.Fatalf("the snapshot the daemon has was loaded %d times", f.loads)
	}
	// The next snapshot shares the first two layers: they are sent again.
	snap2, _ := putSnapshot(t, e.store, slug, layers, 1, "A=2")
	if _, err := e.rt.Load(ctx, snap2); err != nil {
		t.Fatalf("the second snapshot: %v", err)
	}
	if f.loads != 2 || f.sent[1] != 3 {
		t.Fatalf("loads %d, layer files sent %v: want 2 loads, the second with all 3 layers", f.loads, f.sent)
	}
}

// TestLoadContainerdStoreChecks: an image of the snapshot's name that
// differs from the snapshot in its layers or its config is a failed
// load, on the containerd store too; and a daemon that does not say it
// has that store is held to ID = config digest.
func TestLoadContainerdStoreChecks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		f      func(*c8dStore)
		reason string
	}{
		{"env", func(f *c8dStore) { f.tamper = func(ii *image.InspectResponse) { ii.Config.Env = []string{"A=other"} } }, "config"},
		{"layers", func(f *c8dStore) {
			f.tamper = func(ii *image.InspectResponse) { ii.RootFS.Layers = ii.RootFS.Layers[:len(ii.RootFS.Layers)-1] }
		}, "layers"},
		{"created", func(f *c8dStore) { f.tamper = func(ii *image.InspectResponse) { ii.Created = "2001-01-01T00:00:00Z" } }, "created"},
		{"index", func(f *c8dStore) {
			f.tamper = func(ii *image.InspectResponse) { ii.Descriptor.MediaType = ocispec.MediaTypeImageIndex }
		}, "an index"},
		{"graphdriver", func(f *c8dStore) { f.driverType = "" }, "store"},
		{"old-api-env", func(f *c8dStore) {
			f.tamper = func(ii *image.InspectResponse) { ii.Descriptor, ii.Config.Env = nil, []string{"A=other"} }
		}, "config (API before 1.48)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newC8dStore()
			tc.f(f)
			e := newEnv(t, f)
			snap, _ := putSnapshot(t, e.store, newSlug("c8d"), nil, 1, "A=1")
			if _, err := e.rt.Load(ctx, snap); err == nil || !strings.Contains(err.Error(), "not the snapshot") {
				t.Fatalf("a load whose image differs in %s gave %v", tc.reason, err)
			}
		})
	}
}

// TestLoadContainerdStoreOldAPI: a daemon before API 1.48 shows no
// target descriptor; layers and config still prove the image.
func TestLoadContainerdStoreOldAPI(t *testing.T) {
	f := newC8dStore()
	f.tamper = func(ii *image.InspectResponse) { ii.Descriptor = nil }
	e := newEnv(t, f)
	snap, _ := putSnapshot(t, e.store, newSlug("c8d"), nil, 1, "A=1")
	if _, err := e.rt.Load(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
}

// TestLoadContainerdStoreUnpackError: the containerd store reports a
// failed unpack in the stream only; Load reports it.
func TestLoadContainerdStoreUnpackError(t *testing.T) {
	f := newC8dStore()
	f.unpackErr = true
	e := newEnv(t, f)
	snap, _ := putSnapshot(t, e.store, newSlug("c8d"), nil, 1, "A=1")
	if _, err := e.rt.Load(context.Background(), snap); err == nil || !strings.Contains(err.Error(), "could not unpack") {
		t.Fatalf("a load the daemon could not unpack gave %v", err)
	}
}

// containerdStore says whether the test daemon keeps its images in
// containerd's image store.
func containerdStore(t testing.TB, c docker.Client) bool {
	t.Helper()
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(info.DriverStatus, [2]string{"driver-type", "io.containerd.snapshotter.v1"})
}
