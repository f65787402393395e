package remote

import (
	"context"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// convertForPush returns what Push sends for the stored snapshot src:
// the copy of src whose layers are in opts.Compression
// (snapshot.Convert: made once, kept in the store next to the snapshot,
// reused by the next push or export), or src itself when
// opts.Compression is empty (the layers go as stored; the Conversion is
// then nil). The registry gets the copy's manifest (same config and
// diffIDs, new layer digests); the bottle metadata is attached to it.
func convertForPush(ctx context.Context, s *oci.Store, src v1.Descriptor, opts Options) (v1.Descriptor, *snapshot.Conversion, error) {
	switch opts.Compression {
	case "":
		return src, nil, nil
	case layer.Gzip, layer.Zstd:
	default:
		return src, nil, fmt.Errorf("unknown layer compression %q: gzip or zstd (or none to send the layers as stored)", opts.Compression)
	}
	conv, err := snapshot.Convert(ctx, s, src, opts.Compression, layer.Options{})
	if err != nil {
		return src, nil, fmt.Errorf("converting %s to %s layers for the push: %w", src.Digest, opts.Compression, err)
	}
	return conv.Manifest, conv, nil
}
