package docker

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
)

// storedBase is the config of a bottle's image as the store holds it,
// and its digest (nil, zero when the store has none).
type storedBase struct {
	cf     *v1.ConfigFile
	digest v1.Hash
}

// storedConfigDigest returns the image config whose digest is the
// daemon's image ID, if the store has it (a bb snapshot, or a base
// ingested before), checked against the layers the daemon reports, and
// its digest. The blob is marked as used, so that GC keeps it while
// commits build on it. On containerd's image store the image ID is the
// digest of a manifest or index: the config is found through that blob,
// which ingest keeps in the store (see targetConfig).
func (r *Runtime) storedConfigDigest(ctx context.Context, ii image.InspectResponse) (*v1.ConfigFile, v1.Hash) {
	if r.Store == nil {
		return nil, v1.Hash{}
	}
	h, err := v1.NewHash(ii.ID)
	if err != nil {
		return nil, v1.Hash{}
	}
	if _, ok := r.Store.Reuse(h, -1); !ok {
		if c, err := r.api(); err == nil && r.containerdStore(ctx, c) {
			return r.annotatedConfig(ctx, ii)
		}
		return nil, v1.Hash{}
	}
	if cf, err := r.Store.Config(ctx, h); err == nil && sameDiffIDs(cf.RootFS.DiffIDs, ii.RootFS.Layers) {
		return cf, h
	}
	return r.targetConfig(ctx, h, ii.RootFS.Layers, 0)
}

// maxBaseScan bounds the snapshots annotatedConfig reads.
const maxBaseScan = 1000

// annotatedConfig finds the config of image ii (on containerd's image
// store, whose image ID is no config digest) among the configs of the
// store's snapshots and the base configs they name
// (oci.BaseConfigAnnotation; GC keeps those configs, not the manifest
// ingest kept): one whose diffIDs are ii's layers and whose fields are
// those inspect shows (sameConfig).
func (r *Runtime) annotatedConfig(ctx context.Context, ii image.InspectResponse) (*v1.ConfigFile, v1.Hash) {
	idx, err := r.Store.Index(ctx)
	if err != nil {
		return nil, v1.Hash{}
	}
	seen := map[v1.Hash]bool{}
	for i, md := range idx.Manifests {
		if i >= maxBaseScan {
			break
		}
		m, err := r.Store.Manifest(ctx, md)
		if err != nil {
			continue
		}
		cands := []v1.Hash{m.Config.Digest}
		if d, err := v1.NewHash(m.Annotations[oci.BaseConfigAnnotation]); err == nil {
			cands = append(cands, d)
		}
		for _, d := range cands {
			if seen[d] {
				continue
			}
			seen[d] = true
			if _, ok := r.Store.Reuse(d, -1); !ok {
				continue
			}
			if cf, err := r.Store.Config(ctx, d); err == nil && sameDiffIDs(cf.RootFS.DiffIDs, ii.RootFS.Layers) &&
				sameConfig(configFromInspect(ii), ii.Created, cf) {
				return cf, d
			}
		}
	}
	return nil, v1.Hash{}
}

// targetConfig follows the stored manifest or index h to the stored
// config whose diffIDs are layers (an index: its first manifest that
// has one), at most two levels deep.
func (r *Runtime) targetConfig(ctx context.Context, h v1.Hash, layers []string, depth int) (*v1.ConfigFile, v1.Hash) {
	if depth > 1 {
		return nil, v1.Hash{}
	}
	b, err := r.Store.ReadBlob(ctx, h, oci.MaxManifestSize)
	if err != nil {
		return nil, v1.Hash{}
	}
	var m struct {
		Config    *v1.Descriptor  `json:"config"`
		Manifests []v1.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil, v1.Hash{}
	}
	if m.Config != nil {
		d := m.Config.Digest
		if _, ok := r.Store.Reuse(d, -1); !ok {
			return nil, v1.Hash{}
		}
		if cf, err := r.Store.Config(ctx, d); err == nil && sameDiffIDs(cf.RootFS.DiffIDs, layers) {
			return cf, d
		}
		return nil, v1.Hash{}
	}
	for _, md := range m.Manifests {
		if _, ok := r.Store.Reuse(md.Digest, -1); !ok {
			continue
		}
		if cf, d := r.targetConfig(ctx, md.Digest, layers, depth+1); cf != nil {
			return cf, d
		}
	}
	return nil, v1.Hash{}
}

// configFromInspect rebuilds what the snapshot keeps of an image config
// from the daemon's inspect output (which has no history).
func configFromInspect(ii image.InspectResponse) *v1.ConfigFile {
	cf := &v1.ConfigFile{Architecture: ii.Architecture, OS: ii.Os, Variant: ii.Variant, Author: ii.Author}
	if c := ii.Config; c != nil {
		cf.Config = v1.Config{
			User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd, WorkingDir: c.WorkingDir,
			Labels: c.Labels, StopSignal: c.StopSignal, Shell: c.Shell, OnBuild: c.OnBuild,
		}
		if len(c.ExposedPorts) > 0 {
			cf.Config.ExposedPorts = map[string]struct{}{}
			for p := range c.ExposedPorts {
				cf.Config.ExposedPorts[p] = struct{}{}
			}
		}
		if len(c.Volumes) > 0 {
			cf.Config.Volumes = map[string]struct{}{}
			for v := range c.Volumes {
				cf.Config.Volumes[v] = struct{}{}
			}
		}
		if h := c.Healthcheck; h != nil {
			cf.Config.Healthcheck = &v1.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
				StartPeriod: h.StartPeriod, Retries: h.Retries}
		}
	}
	return cf
}

func sameDiffIDs(a []v1.Hash, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i] {
			return false
		}
	}
	return true
}

// baseLayers returns the layers of image ii as stored layers, ingesting
// them from the daemon if the store lacks any, and the image's config
// (stored: what storedConfigDigest found before, read again only after
// an ingest).
// The store finds a layer by its diffID in the images it holds (a
// snapshot built on this base) or among the layers this process wrote,
// and keeps what it finds from GC until the snapshot that uses it is
// tagged (see oci.Store.LayerByDiffID).
func (r *Runtime) baseLayers(ctx context.Context, c Client, ii image.InspectResponse, stored storedBase) ([]snapshot.LayerInfo, storedBase, error) {
	want := make([]v1.Hash, len(ii.RootFS.Layers))
	for i, l := range ii.RootFS.Layers {
		h, err := v1.NewHash(l)
		if err != nil {
			return nil, storedBase{}, fmt.Errorf("image %s: layer %d: %w", ii.ID, i, err)
		}
		want[i] = h
	}
	collect := func() ([]snapshot.LayerInfo, bool, error) {
		out := make([]snapshot.LayerInfo, 0, len(want))
		for _, d := range want {
			l, err := r.Store.LayerByDiffID(ctx, d)
			if errors.Is(err, oci.ErrNotFound) {
				return nil, false, nil
			}
			if err != nil {
				return nil, false, err
			}
			out = append(out, snapshot.LayerInfo{Digest: l.Digest, DiffID: d, Size: l.Size, Media: l.MediaType})
		}
		return out, true, nil
	}
	layers, ok, err := collect()
	if err != nil {
		return nil, storedBase{}, err
	}
	if ok && stored.cf != nil {
		return layers, stored, nil
	}
	start := time.Now()
	r.log().Info("copying the base image's layers into the store (once per base image)", "image", ii.ID, "layers", len(want))
	if err := r.ingest(ctx, c, ii.ID, want); err != nil {
		return nil, storedBase{}, err
	}
	r.log().Info("base image stored", "image", ii.ID, "took", time.Since(start).Round(time.Millisecond))
	if layers, ok, err = collect(); err != nil {
		return nil, storedBase{}, err
	} else if !ok {
		return nil, storedBase{}, fmt.Errorf("image %s: its layers are not in the store after ingesting them", ii.ID)
	}
	if stored.cf, stored.digest = r.storedConfigDigest(ctx, ii); stored.cf == nil {
		return nil, storedBase{}, fmt.Errorf("image %s: its config is not in the store after ingesting it", ii.ID)
	}
	return layers, stored, nil
}

// ingest copies the layers of image id whose diffIDs are in want, and its
// config, from the daemon's image save into the store, compressing each
// layer and checking its diffID. It reads both the docker-archive format
// (<dir>/layer.tar) and the OCI layout that newer daemons write
// (blobs/sha256/<diffID>, uncompressed; containerd's image store also
// saves gzip layers, and its id is the image's manifest or index, kept
// with the other JSON blobs: see ingestBlob).
func (r *Runtime) ingest(ctx context.Context, c Client, id string, want []v1.Hash) error {
	idHash, err := v1.NewHash(id)
	if err != nil {
		return fmt.Errorf("image ID %q: %w", id, err)
	}
	wanted := map[v1.Hash]bool{}
	for _, d := range want {
		wanted[d] = true
	}
	rc, err := c.ImageSave(ctx, []string{id})
	if err != nil {
		return fmt.Errorf("saving image %s from the daemon: %w", id, err)
	}
	defer rc.Close()
	found := map[v1.Hash]bool{}
	gotConfig := false
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading the saved image %s: %w", id, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := cleanRel(hdr.Name)
		dir, base := path.Split(name)
		switch {
		case name == idHash.Hex+".json" || name == "blobs/sha256/"+idHash.Hex:
			if hdr.Size > oci.MaxConfigSize {
				return fmt.Errorf("saved image %s: config is %d bytes", id, hdr.Size)
			}
			if _, _, err := r.Store.Ingest(ctx, tr, idHash, hdr.Size); err != nil {
				return fmt.Errorf("storing the config of image %s: %w", id, err)
			}
			gotConfig = true
		case dir == "blobs/sha256/":
			// OCI layout: an uncompressed layer's blob name is its diffID.
			d := v1.Hash{Algorithm: "sha256", Hex: base}
			if !wanted[d] {
				if err := r.ingestBlob(ctx, tr, hdr.Size, d, wanted, found); err != nil {
					return fmt.Errorf("saved image %s: %w", id, err)
				}
				continue
			}
			if found[d] {
				continue
			}
			if _, err := r.Store.LayerByDiffID(ctx, d); err == nil {
				found[d] = true
				continue
			}
			if err := r.ingestLayer(ctx, tr, hdr.Size, d); err != nil {
				return err
			}
			found[d] = true
		case base == "layer.tar":
			d, err := r.ingestLayerTar(ctx, tr, hdr.Size)
			if err != nil {
				return err
			}
			found[d] = found[d] || wanted[d]
		}
	}
	if !gotConfig {
		return fmt.Errorf("the saved image %s has no config %s.json", id, idHash.Hex)
	}
	for _, d := range want {
		if !found[d] {
			return fmt.Errorf("the saved image %s lacks its layer %s", id, d)
		}
	}
	return nil
}

// ingestBlob stores a blob h of size n of an OCI layout save that is
// not named by a wanted diffID, as containerd's image store saves them:
// a gzip layer is stored (recompressed) if its diffID is wanted, a JSON
// blob (the image's index, manifests, config: see targetConfig) as it
// is; anything else is skipped.
func (r *Runtime) ingestBlob(ctx context.Context, rd io.Reader, n int64, h v1.Hash, wanted, found map[v1.Hash]bool) error {
	br := bufio.NewReader(rd)
	head, _ := br.Peek(2)
	switch {
	case len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("layer %s: %w", h, err)
		}
		d, err := r.ingestLayerTar(ctx, zr, -1)
		if err != nil {
			return fmt.Errorf("layer %s: %w", h, err)
		}
		found[d] = found[d] || wanted[d]
	case len(head) > 0 && head[0] == '{' && n <= oci.MaxConfigSize:
		if _, _, err := r.Store.Ingest(ctx, br, h, n); err != nil {
			return fmt.Errorf("storing blob %s: %w", h, err)
		}
	}
	return nil
}

// ingestLayer compresses one layer tar of size n into the store and
// checks that its diffID is want.
func (r *Runtime) ingestLayer(ctx context.Context, rd io.Reader, n int64, want v1.Hash) error {
	got, err := r.ingestLayerTar(ctx, rd, n)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("the daemon's layer %s has diffID %s", want, got)
	}
	return nil
}

// ingestLayerTar compresses one layer tar of size n (-1: unknown) into
// the store (which records it: see oci.Store.LayerByDiffID) and returns
// its diffID.
func (r *Runtime) ingestLayerTar(ctx context.Context, rd io.Reader, n int64) (v1.Hash, error) {
	cr := &iox.CountingReader{R: rd}
	l, err := layer.Write(ctx, r.Store, cr, layer.Options{})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("storing a base layer: %w", err)
	}
	if n >= 0 && cr.Count() != n {
		return v1.Hash{}, fmt.Errorf("storing a base layer: read %d of %d bytes", cr.Count(), n)
	}
	d, _ := l.DiffID()
	return d, nil
}
