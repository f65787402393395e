package archive

import (
	"context"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
)

// Layer compressions Export can write (ExportOptions.Compression).
const (
	// CompressionAsStored copies layers as they are in the store.
	CompressionAsStored = ""
	// CompressionGzip writes zstd layers as gzip, for readers without
	// zstd (Docker before 23, containerd before 1.5, docker load of the
	// docker-archive half of an export).
	CompressionGzip = "gzip"
	// CompressionZstd writes gzip layers as zstd: smaller, and faster to
	// decompress, for readers that know zstd (Docker 23+, containerd
	// 1.5+, podman, skopeo, bb).
	CompressionZstd = "zstd"
)

// ValidCompression checks an ExportOptions.Compression value.
func ValidCompression(c string) error {
	switch c {
	case CompressionAsStored, "as-stored", CompressionGzip, CompressionZstd:
		return nil
	}
	return fmt.Errorf("unknown layer compression %q: give as-stored, gzip or zstd", c)
}

// converting reports whether c asks for a conversion.
func converting(c string) bool { return c == CompressionGzip || c == CompressionZstd }

// convert returns img with its layers in compression c, through
// snapshot.Convert: the converted copy stays in the store, attached to
// the snapshot, so the next export (or push) in c reuses it. The config
// and diffIDs are unchanged; the manifest digest is new when a layer was
// converted (changed is then true). An image already in c is returned as
// it is.
func convert(ctx context.Context, s *oci.Store, img Image, c string) (Image, bool, error) {
	conv, err := snapshot.Convert(ctx, s, img.Manifest, layer.Compression(c), layer.Options{})
	if err != nil {
		return img, false, err
	}
	img.Manifest = conv.Manifest
	return img, conv.Converted, nil
}
