package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// LayerIndexFile is the file under the store root that maps layer diffIDs
// to the compressed blobs holding them. It is a cache: an entry whose
// blob is gone (bb gc) is ignored, and losing the file costs one more
// ingest of the base image.
const LayerIndexFile = "bb-layers.json"

// maxLayerIndexSize bounds what is read of the index.
const maxLayerIndexSize = 16 << 20

// layerEntry is one stored layer.
type layerEntry struct {
	Digest v1.Hash         `json:"digest"`
	Size   int64           `json:"size"`
	Media  types.MediaType `json:"mediaType"`
	// TarSize is the uncompressed size, 0 if not known yet.
	TarSize int64 `json:"tarSize,omitempty"`
}

type layerIndexFile struct {
	Layers map[string]layerEntry `json:"layers"`
}

// layerIndex is the diffID -> blob map of a store.
type layerIndex struct {
	store *oci.Store
}

func (x layerIndex) path() string { return filepath.Join(x.store.Root(), LayerIndexFile) }

func (x layerIndex) read() (map[string]layerEntry, error) {
	f, err := os.Open(x.path())
	if errors.Is(err, os.ErrNotExist) {
		return map[string]layerEntry{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLayerIndexSize+1))
	if err != nil {
		return nil, err
	}
	var li layerIndexFile
	if len(b) > maxLayerIndexSize || json.Unmarshal(b, &li) != nil || li.Layers == nil {
		return map[string]layerEntry{}, nil // a damaged cache is an empty one
	}
	return li.Layers, nil
}

// lookup returns the stored layer whose diffID is d, if its blob is there.
func (x layerIndex) lookup(ctx context.Context, m map[string]layerEntry, d v1.Hash) (layerEntry, bool) {
	e, ok := m[d.String()]
	if !ok {
		return layerEntry{}, false
	}
	if n, err := x.store.Stat(ctx, e.Digest); err != nil || n != e.Size {
		return layerEntry{}, false
	}
	return e, true
}

// add records entries (keyed by diffID) and drops those whose blob is
// gone. Concurrent writers may lose each other's entries; that costs a
// later ingest, never a wrong layer, because every use checks the blob.
func (x layerIndex) add(ctx context.Context, add map[string]layerEntry) error {
	m, err := x.read()
	if err != nil {
		return err
	}
	for k, e := range add {
		if old, ok := m[k]; ok && old.Digest == e.Digest && e.TarSize == 0 {
			e.TarSize = old.TarSize
		}
		m[k] = e
	}
	for k, e := range m {
		if _, err := x.store.Stat(ctx, e.Digest); err != nil {
			delete(m, k)
		}
	}
	b, err := json.Marshal(layerIndexFile{Layers: m})
	if err != nil {
		return err
	}
	return oci.WriteFileAtomic(x.path(), b, oci.FileMode)
}
