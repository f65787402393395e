package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Layer compressions Export can write (ExportOptions.Compression).
const (
	// CompressionAsStored copies layers as they are in the store.
	CompressionAsStored = ""
	// CompressionGzip writes zstd layers as gzip, for readers without
	// zstd (Docker before 23, containerd before 1.5, docker load of the
	// docker-archive half of an export).
	CompressionGzip = "gzip"
)

// ValidCompression checks an ExportOptions.Compression value.
func ValidCompression(c string) error {
	switch c {
	case CompressionAsStored, "as-stored", CompressionGzip:
		return nil
	}
	return fmt.Errorf("unknown layer compression %q: give gzip (convert zstd layers) or as-stored", c)
}

// toGzip returns img with every zstd layer recompressed as gzip: the new
// layers and manifest go into the store (unreferenced: bb gc removes
// them after its grace period), the config is unchanged (a layer's diffID
// does not depend on its compression, and each new layer is checked to
// decompress to its diffID), the manifest gets new layer digests and so a
// new digest. An image without zstd layers is returned as it is.
func toGzip(ctx context.Context, s *oci.Store, img Image) (Image, bool, error) {
	mb, err := s.ReadBlob(ctx, img.Manifest.Digest, oci.MaxManifestSize)
	if err != nil {
		return img, false, err
	}
	var man map[string]json.RawMessage
	if err := json.Unmarshal(mb, &man); err != nil {
		return img, false, fmt.Errorf("manifest %s: %w", img.Manifest.Digest, err)
	}
	m, err := parseManifest(mb)
	if err != nil {
		return img, false, fmt.Errorf("manifest %s: %w", img.Manifest.Digest, err)
	}
	if !hasZstd(m) {
		return img, false, nil
	}
	cb, err := s.ReadBlob(ctx, m.Config.Digest, oci.MaxConfigSize)
	if err != nil {
		return img, false, fmt.Errorf("config: %w", err)
	}
	var cfg v1.ConfigFile
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return img, false, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return img, false, fmt.Errorf("manifest %s has %d layers, its config %d diff_ids", img.Manifest.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	gz := types.OCILayer
	if m.MediaType == types.DockerManifestSchema2 || img.Manifest.MediaType == types.DockerManifestSchema2 {
		gz = types.DockerLayer // docker manifests know no zstd; kept for symmetry
	}
	layers := make([]v1.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		layers[i] = l
		if l.MediaType != types.OCILayerZStd {
			continue
		}
		nl, err := recompress(ctx, s, l)
		if err != nil {
			return img, false, err
		}
		if nl.DiffID != cfg.RootFS.DiffIDs[i] {
			return img, false, fmt.Errorf("zstd layer %s decompresses to %s, not its diffID %s: the store is damaged", l.Digest, nl.DiffID, cfg.RootFS.DiffIDs[i])
		}
		layers[i] = v1.Descriptor{MediaType: gz, Digest: nl.Digest, Size: nl.Size, URLs: l.URLs}
	}
	lb, err := json.Marshal(layers)
	if err != nil {
		return img, false, err
	}
	man["layers"] = lb
	nb, err := json.Marshal(man)
	if err != nil {
		return img, false, err
	}
	d, err := s.PutBytes(ctx, img.Manifest.MediaType, nb)
	if err != nil {
		return img, false, err
	}
	img.Manifest = d
	return img, true, nil
}

func hasZstd(m *v1.Manifest) bool {
	for _, l := range m.Layers {
		if l.MediaType == types.OCILayerZStd {
			return true
		}
	}
	return false
}

type gzipLayer struct {
	Digest, DiffID v1.Hash
	Size           int64
}

// recompress writes the zstd layer l as a gzip layer into the store.
func recompress(ctx context.Context, s *oci.Store, l v1.Descriptor) (gzipLayer, error) {
	f, err := s.Blob(ctx, l.Digest)
	if err != nil {
		return gzipLayer{}, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return gzipLayer{}, fmt.Errorf("layer %s: %w", l.Digest, err)
	}
	defer zr.Close()
	nl, err := layer.Write(ctx, s, io.Reader(zr), layer.Options{})
	if err != nil {
		return gzipLayer{}, fmt.Errorf("recompressing zstd layer %s as gzip: %w", l.Digest, err)
	}
	d, _ := nl.Digest()
	diff, _ := nl.DiffID()
	n, _ := nl.Size()
	return gzipLayer{Digest: d, DiffID: diff, Size: n}, nil
}
