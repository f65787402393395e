package remote

import (
	"context"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// convertForPush returns the copy of src whose layers are in
// opts.Compression (snapshot.Convert: made once, kept in the store next
// to the snapshot, reused by the next push or export), or nil when
// opts.Compression is empty (send the layers as stored). The registry
// then gets the copy's manifest (same config and diffIDs, new layer
// digests); the bottle metadata is attached to it.
func convertForPush(ctx context.Context, s *oci.Store, src v1.Descriptor, opts Options) (*snapshot.Conversion, error) {
	switch opts.Compression {
	case "":
		return nil, nil
	case layer.Gzip, layer.Zstd:
	default:
		return nil, fmt.Errorf("unknown layer compression %q: gzip or zstd (or none to send the layers as stored)", opts.Compression)
	}
	conv, err := snapshot.Convert(ctx, s, src, opts.Compression, layer.Options{})
	if err != nil {
		return nil, fmt.Errorf("converting %s to %s layers for the push: %w", src.Digest, opts.Compression, err)
	}
	return conv, nil
}
