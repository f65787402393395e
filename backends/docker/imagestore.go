package docker

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/docker/docker/api/types/image"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// containerdSnapshotter is the driver-type the daemon reports in its
// DriverStatus when it keeps images in containerd's image store (the
// default of Docker Engine 29, the containerd-snapshotter feature
// before): moby daemon/containerd/service.go, LayerStoreStatus.
const containerdSnapshotter = "io.containerd.snapshotter.v1"

// containerdStore says whether the daemon keeps its images in
// containerd's image store. There an image ID is the digest of the
// image's manifest (or index), not of its config, and a load needs
// every layer in the archive. The answer is asked once per Runtime; a
// daemon that does not answer is taken for the graph-driver store,
// whose checks are the strict ones.
func (r *Runtime) containerdStore(ctx context.Context, c Client) bool {
	r.storeOnce.Do(func() {
		info, err := c.Info(ctx)
		if err != nil {
			r.log().Debug("the daemon does not tell its image store; taking the graph-driver store", "err", err)
			return
		}
		for _, kv := range info.DriverStatus {
			if kv[0] == "driver-type" && kv[1] == containerdSnapshotter {
				r.containerd = true
			}
		}
		r.log().Debug("the daemon's image store", "driver", info.Driver, "containerd", r.containerd)
	})
	return r.containerd
}

// isSnapshot says whether the daemon's image ii is the snapshot im.
// On the graph-driver store the image ID is the config digest: equal
// IDs prove it. On the containerd store (containerd) the ID is the
// digest of the manifest the daemon wrote for the loaded archive, and
// inspect offers no config digest: the image is the snapshot when its
// target is a single-platform manifest (where inspect shows it), its layers are the snapshot's
// diffIDs in order (the snapshot's own diff layer makes them unique)
// and the config fields inspect shows are the snapshot's.
func isSnapshot(ii image.InspectResponse, im *storedImage, containerd bool) bool {
	if ii.ID == im.man.Config.Digest.String() {
		return true
	}
	if !containerd {
		return false
	}
	// Inspect shows the target from API 1.48 (Docker 28) on.
	if d := ii.Descriptor; d != nil {
		switch {
		case d.Digest.String() != ii.ID:
			return false
		case d.MediaType != "application/vnd.docker.distribution.manifest.v2+json" && d.MediaType != "application/vnd.oci.image.manifest.v1+json":
			return false
		}
	}
	return sameDiffIDs(im.cfg.RootFS.DiffIDs, ii.RootFS.Layers) && sameConfig(configFromInspect(ii), ii.Created, im.cfg)
}

// sameConfig compares what inspect shows of an image config (got,
// created) with the config want.
func sameConfig(got *v1.ConfigFile, created string, want *v1.ConfigFile) bool {
	if got.Architecture != want.Architecture || got.OS != want.OS || got.Variant != want.Variant || got.Author != want.Author {
		return false
	}
	if created == "" {
		if !want.Created.IsZero() {
			return false
		}
	} else if t, err := time.Parse(time.RFC3339Nano, created); err != nil || !t.Equal(want.Created.Time) {
		return false
	}
	g, w := got.Config, want.Config
	return g.User == w.User && g.WorkingDir == w.WorkingDir && g.StopSignal == w.StopSignal &&
		slices.Equal(g.Env, w.Env) && slices.Equal(g.Entrypoint, w.Entrypoint) && slices.Equal(g.Cmd, w.Cmd) &&
		maps.Equal(g.Labels, w.Labels)
}
