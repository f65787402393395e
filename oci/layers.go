package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// StoredLayer is a layer blob of the store and the tar it holds.
type StoredLayer struct {
	Digest    v1.Hash
	Size      int64
	MediaType types.MediaType
	// DiffID is the sha256 of the uncompressed tar.
	DiffID v1.Hash
	// TarSize is the uncompressed size, 0 when the store does not know it
	// (it learns it from RecordLayer: layer.Write counts what it
	// compresses).
	TarSize int64
}

// legacyLayerIndex is the side file older bb versions kept in the store
// root. Nothing reads it; GC removes it.
const legacyLayerIndex = "bb-layers.json"

// maxLayerEntries bounds the layers the index keeps in memory; past it,
// the index starts again from the store's images.
const maxLayerEntries = 1 << 16

// layerIndex maps diffIDs to the layer blobs holding them. It lives in
// memory, shared by every view of one opened store, and is derived from
// the store's content: the images index.json reaches (each config's
// diffIDs paired with its manifest's layers), and the layers this process
// wrote (RecordLayer). Nothing is persisted: a layer no image references
// yet is found again by the process that wrote it, and by any process
// once a tagged image uses it.
type layerIndex struct {
	mu sync.Mutex
	// byDiffID lists the blobs holding each diffID, most recent last.
	byDiffID map[v1.Hash][]StoredLayer
	// scanned are the manifests (content-addressed, so never stale)
	// whose layers are in byDiffID.
	scanned map[v1.Hash]bool
	n       int
}

// add records l, replacing an entry for the same blob (keeping a known
// TarSize). Call it with mu held.
func (x *layerIndex) add(l StoredLayer) {
	if x.byDiffID == nil || x.n >= maxLayerEntries {
		x.reset()
	}
	list := x.byDiffID[l.DiffID]
	for i, e := range list {
		if e.Digest == l.Digest {
			if l.TarSize == 0 {
				l.TarSize = e.TarSize
			}
			list = append(list[:i], list[i+1:]...)
			x.n--
			break
		}
	}
	x.byDiffID[l.DiffID] = append(list, l)
	x.n++
}

// reset empties the index. Call it with mu held.
func (x *layerIndex) reset() {
	x.byDiffID, x.scanned, x.n = map[v1.Hash][]StoredLayer{}, map[v1.Hash]bool{}, 0
}

// drop forgets the blob digest, which is gone, as a holder of diffID.
// The images scanned are scanned again at the next miss: one of them may
// come back (an import of a removed snapshot) with the blob. Call it
// with mu held.
func (x *layerIndex) drop(diffID, digest v1.Hash) {
	list := x.byDiffID[diffID]
	for i, e := range list {
		if e.Digest == digest {
			x.byDiffID[diffID] = append(list[:i], list[i+1:]...)
			x.n--
			break
		}
	}
	x.scanned = map[v1.Hash]bool{}
}

// RecordLayer tells the store that blob l.Digest holds the tar l.DiffID
// (of l.TarSize bytes, if known), so that LayerByDiffID finds it before
// any image references it. layer.Write calls it for every layer it
// writes. A record for a blob that is not in the store is harmless:
// LayerByDiffID checks the blob.
func (s *Store) RecordLayer(l StoredLayer) {
	if validHash(l.Digest) != nil || validHash(l.DiffID) != nil || l.Size < 0 || l.TarSize < 0 {
		return
	}
	x := &s.sh.layers
	x.mu.Lock()
	defer x.mu.Unlock()
	x.add(l)
}

// LayerByDiffID returns a layer blob of the store whose uncompressed tar
// has the sha256 diffID, or ErrNotFound. The blob is marked as used now
// (see Reuse) under the store's lock, so neither GC nor a rollback
// removes it for GCGrace: long enough for a commit that builds on it to
// tag the image that references it.
func (s *Store) LayerByDiffID(ctx context.Context, diffID v1.Hash) (StoredLayer, error) {
	if err := validHash(diffID); err != nil {
		return StoredLayer{}, err
	}
	if err := ctx.Err(); err != nil {
		return StoredLayer{}, err
	}
	var found StoredLayer
	ok := false
	err := s.lock(unix.LOCK_SH, func() error {
		x := &s.sh.layers
		x.mu.Lock()
		defer x.mu.Unlock()
		if found, ok = s.findLayer(diffID); ok {
			return nil
		}
		if err := s.scanImages(ctx); err != nil {
			return err
		}
		found, ok = s.findLayer(diffID)
		return nil
	})
	if err != nil {
		return StoredLayer{}, err
	}
	if !ok {
		return StoredLayer{}, fmt.Errorf("layer with diffID %s: %w", diffID, ErrNotFound)
	}
	return found, nil
}

// TarSize returns the uncompressed size of the tar diffID held by layer
// blob h, if the store knows it (see RecordLayer). Unlike LayerByDiffID
// it neither marks the blob as used (a commit's own new layer stays
// its to roll back) nor checks that the blob is still there.
func (s *Store) TarSize(diffID, h v1.Hash) (int64, bool) {
	x := &s.sh.layers
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, l := range x.byDiffID[diffID] {
		if l.Digest == h && l.TarSize > 0 {
			return l.TarSize, true
		}
	}
	return 0, false
}

// findLayer returns the most recently recorded blob holding diffID that
// is in the store with its size, touching it; a gzip blob comes before
// the others (a zstd copy made for a push or an export must not turn the
// next snapshot's layers into zstd, which Docker before 23 cannot load).
// Entries whose blob is gone are dropped. Call it with the store's lock
// and the index's mu held.
func (s *Store) findLayer(diffID v1.Hash) (StoredLayer, bool) {
	x := &s.sh.layers
	for _, gzipOnly := range []bool{true, false} {
		list := slices.Clone(x.byDiffID[diffID])
		for i := len(list) - 1; i >= 0; i-- {
			l := list[i]
			if gzipOnly && l.MediaType != types.OCILayer && l.MediaType != types.DockerLayer {
				continue
			}
			if _, ok := s.touch(l.Digest, l.Size); ok {
				return l, true
			}
			x.drop(diffID, l.Digest)
		}
	}
	return StoredLayer{}, false
}

// scanImages adds the layers of the images index.json reaches that the
// index has not seen yet. Manifests that are not images (metadata, file
// indexes) and damaged ones are skipped: the index is a cache of what the
// store holds, never a check of it.
func (s *Store) scanImages(ctx context.Context) error {
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	for _, d := range idx.Manifests {
		if err := s.scanDescriptor(ctx, d, 0); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) scanDescriptor(ctx context.Context, d v1.Descriptor, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	x := &s.sh.layers
	if x.scanned[d.Digest] || depth > 4 {
		return nil
	}
	switch {
	case d.MediaType.IsImage():
		m, err := s.Manifest(ctx, d)
		if err != nil {
			return nil
		}
		s.indexImage(ctx, m)
	case d.MediaType.IsIndex():
		im, err := s.indexManifest(ctx, d.Digest)
		if err != nil {
			return nil
		}
		for _, c := range im.Manifests {
			if err := s.scanDescriptor(ctx, c, depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if x.scanned == nil {
		x.reset()
	}
	x.scanned[d.Digest] = true
	return nil
}

// indexImage pairs the diffIDs of m's config with m's layers.
func (s *Store) indexImage(ctx context.Context, m *v1.Manifest) {
	if !m.Config.MediaType.IsConfig() {
		return
	}
	cf, err := s.Config(ctx, m.Config.Digest)
	if err != nil || len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return
	}
	x := &s.sh.layers
	for i, l := range m.Layers {
		if !l.MediaType.IsLayer() {
			continue
		}
		if validHash(l.Digest) != nil || validHash(cf.RootFS.DiffIDs[i]) != nil {
			continue
		}
		x.add(StoredLayer{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType, DiffID: cf.RootFS.DiffIDs[i]})
	}
}

// removeLegacyLayerIndex removes the side file of older versions. Call it
// under the store's exclusive lock.
func (s *Store) removeLegacyLayerIndex() error {
	err := os.Remove(filepath.Join(s.root, legacyLayerIndex))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", legacyLayerIndex, err)
	}
	return nil
}
