package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PushResult reports a push.
type PushResult struct {
	// Reference is where the image went: registry/repo:tag (or @digest).
	Reference string          `json:"reference"`
	Digest    v1.Hash         `json:"digest"`
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
	// Sent is the number of bytes sent; Skipped and Mounted the sizes of
	// the blobs the registry already had or mounted from another
	// repository.
	Sent    int64        `json:"sent"`
	Skipped int64        `json:"skipped"`
	Mounted int64        `json:"mounted"`
	Blobs   []BlobResult `json:"blobs"`
	// Metadata is the referrer artifact carrying the bottle's
	// metadata.json; nil when the snapshot has none in the store.
	Metadata *v1.Descriptor `json:"metadata,omitempty"`
	Warnings []string       `json:"warnings,omitempty"`
	Duration time.Duration  `json:"duration"`
	// Conversion, when Options.Compression was set, says which stored
	// snapshot Digest is a converted copy of (or that it is the snapshot
	// itself) and how many layers were recompressed.
	Conversion *snapshot.Conversion `json:"conversion,omitempty"`
}

// Push sends the image src (a manifest in store) to dst,
// "registry/repo[:tag]" or "registry/repo@digest", with the bottle's
// metadata as a referrer artifact.
func Push(ctx context.Context, store *oci.Store, src v1.Descriptor, dst string, opts Options) (*PushResult, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(dst)
	if err != nil {
		return nil, fmt.Errorf("invalid destination %q: %w (want REGISTRY/REPO[:TAG])", dst, err)
	}
	stored := src
	src, conv, err := convertForPush(ctx, store, stored, opts)
	if err != nil {
		return nil, err
	}
	man, err := store.Manifest(ctx, src)
	if err != nil {
		return nil, err
	}
	// The registry gets the manifest's bytes as stored: they are its digest.
	mb, err := store.ReadBlob(ctx, src.Digest, oci.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	mt := man.MediaType
	if mt == "" {
		mt = src.MediaType
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, fmt.Errorf("%s is a %s, not an image manifest: bb push sends snapshots", src.Digest, mt)
	}
	if d, ok := ref.(name.Digest); ok && d.DigestStr() != src.Digest.String() {
		return nil, fmt.Errorf("destination %s names digest %s, but the snapshot is %s", dst, d.DigestStr(), src.Digest)
	}
	blobs := append([]v1.Descriptor{man.Config}, man.Layers...)
	st, err := openState(store)
	if err != nil {
		return nil, err
	}
	repo := ref.Context()
	reg, repoName := repo.RegistryStr(), repo.RepositoryStr()
	mounts := map[v1.Hash]string{}
	scopes := []string{repo.Scope(transport.PushScope)}
	for _, b := range blobs {
		if from := st.mountSource(reg, repoName, b.Digest); from != "" {
			mounts[b.Digest] = from
			if r, err := name.NewRepository(reg + "/" + from); err == nil {
				scopes = append(scopes, r.Scope(transport.PullScope))
			}
		}
	}
	c, err := dial(ctx, repo, opts, scopes)
	if err != nil {
		return nil, err
	}
	res := &PushResult{Reference: ref.Name(), Digest: src.Digest, MediaType: mt, Size: int64(len(mb)), Conversion: conv}
	res.Blobs, err = eachBlob(ctx, blobs, opts.Concurrency, BlobExists, func(ctx context.Context, b v1.Descriptor) (BlobResult, error) {
		return c.pushBlob(ctx, st, store, b, mounts[b.Digest])
	})
	if err != nil {
		return nil, err
	}
	for _, b := range res.Blobs {
		res.Sent += b.Bytes
		switch b.Status {
		case BlobExists:
			res.Skipped += b.Size
		case BlobMounted:
			res.Mounted += b.Size
		}
	}
	if err := c.putManifest(ctx, ref.Identifier(), mt, src.Digest, mb); err != nil {
		return nil, err
	}
	res.Sent += int64(len(mb))
	hs := make([]v1.Hash, 0, len(blobs))
	for _, b := range blobs {
		hs = append(hs, b.Digest)
	}
	if err := st.record(reg, repoName, hs); err != nil {
		opts.Logger.Warn("recording pushed blobs", "err", err)
	}
	raw, err := snapshot.GetMetadata(ctx, store, stored.Digest)
	switch {
	case errors.Is(err, oci.ErrNotFound):
		res.Warnings = append(res.Warnings, "the snapshot has no bottle metadata in the store; bb pull will restore the image only")
	case err != nil:
		return nil, fmt.Errorf("reading the bottle metadata of %s: %w", src.Digest, err)
	default:
		md, err := c.pushMetadata(ctx, v1.Descriptor{MediaType: mt, Digest: src.Digest, Size: int64(len(mb))}, raw,
			man.Annotations[oci.SlugAnnotation], man.Annotations[oci.CreatedAnnotation])
		if err != nil {
			return nil, c.explain("attaching the bottle metadata to "+src.Digest.String()+" in", err)
		}
		res.Metadata = &md
	}
	res.Duration = time.Since(start)
	return res, nil
}

// putManifest uploads a manifest under tag (or its digest).
func (c *client) putManifest(ctx context.Context, tag string, mt types.MediaType, h v1.Hash, mb []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.url("manifests/"+tag), bytes.NewReader(mb))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", string(mt))
	resp, err := c.do(req, http.StatusCreated, http.StatusOK, http.StatusAccepted)
	if err != nil {
		return c.explain("pushing manifest "+h.String()+" to", err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != h.String() {
		return fmt.Errorf("%s stored manifest %s as %s", c.where(), h, got)
	}
	return nil
}
