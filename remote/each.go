package remote

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"
)

// eachBlob runs fn for every distinct blob, at most limit at a time, and
// returns the results in the order of blobs. A digest listed twice is done
// once; its later entries get status dup.
func eachBlob(ctx context.Context, blobs []v1.Descriptor, limit int, dup BlobStatus, fn func(context.Context, v1.Descriptor) (BlobResult, error)) ([]BlobResult, error) {
	out := make([]BlobResult, len(blobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	seen := map[v1.Hash]bool{}
	for i, b := range blobs {
		if seen[b.Digest] {
			out[i] = BlobResult{Digest: b.Digest, Size: b.Size, MediaType: b.MediaType, Status: dup}
			continue
		}
		seen[b.Digest] = true
		g.Go(func() error {
			br, err := fn(gctx, b)
			out[i] = br // each goroutine writes its own element
			return err
		})
	}
	return out, g.Wait()
}
