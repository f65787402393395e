package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PullResult reports a pull.
type PullResult struct {
	// Reference is what was pulled, as given.
	Reference string `json:"reference"`
	// Repository is registry/repo.
	Repository string `json:"repository"`
	// Manifest is the image's manifest, now in the store (untagged).
	Manifest v1.Descriptor `json:"manifest"`
	// Slug is the bottle slug the snapshot carries in its annotations
	// ("" if none).
	Slug string `json:"slug,omitempty"`
	// Metadata is the bottle's metadata.json from the referrer artifact
	// (nil if the image has none); MetadataArtifact is that artifact.
	Metadata         []byte         `json:"-"`
	MetadataArtifact *v1.Descriptor `json:"metadataArtifact,omitempty"`
	// Fetched is the number of bytes downloaded; Present the sizes of
	// blobs the store already had.
	Fetched int64 `json:"fetched"`
	// NewBlobs are the blobs the pull added to the store: a caller that
	// does not tag the image passes them to oci.Store.Discard.
	NewBlobs []v1.Hash     `json:"-"`
	Present  int64         `json:"present"`
	Blobs    []BlobResult  `json:"blobs"`
	Duration time.Duration `json:"duration"`
}

// manifestAccept lists what bb asks a registry for.
var manifestAccept = strings.Join([]string{
	string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
	string(types.OCIImageIndex), string(types.DockerManifestList),
}, ", ")

// Pull fetches the image src ("registry/repo[:tag|@digest]") into the
// store: manifest, config and layers, each verified against its digest
// and size while it streams, and the bottle's metadata referrer. The
// image stays untagged; tag it (bottle.Manager.Adopt) before the store's
// GC grace period ends. A pull that fails removes the blobs it added.
func Pull(ctx context.Context, store *oci.Store, src string, opts Options) (*PullResult, error) {
	tracked, added := store.Track()
	res, err := pull(ctx, tracked, src, opts)
	if err != nil {
		if rerr := added.Rollback(ctx); rerr != nil {
			return nil, fmt.Errorf("%w (and removing the blobs it added failed: %v)", err, rerr)
		}
		return nil, err
	}
	res.NewBlobs = added.Blobs()
	return res, nil
}

func pull(ctx context.Context, store *oci.Store, src string, opts Options) (*PullResult, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(src)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w (want REGISTRY/REPO[:TAG|@DIGEST])", src, err)
	}
	repo := ref.Context()
	c, err := dial(ctx, repo, opts, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, err
	}
	mdesc, mb, err := c.fetchManifest(ctx, ref)
	if err != nil {
		return nil, err
	}
	var man v1.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("parsing manifest %s from %s: %w", mdesc.Digest, c.where(), err)
	}
	if man.MediaType != "" && man.MediaType != mdesc.MediaType {
		mdesc.MediaType = man.MediaType
	}
	switch mdesc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	case types.OCIImageIndex, types.DockerManifestList:
		return nil, fmt.Errorf("%s is an image index (several platforms), not a bb snapshot: pull one platform's manifest by digest", src)
	default:
		return nil, fmt.Errorf("%s is a %q, not an image manifest", src, mdesc.MediaType)
	}
	if man.Config.Size > oci.MaxConfigSize {
		return nil, fmt.Errorf("%s: image config declares %d bytes, more than bb accepts (%d)", src, man.Config.Size, oci.MaxConfigSize)
	}
	blobs := append([]v1.Descriptor{man.Config}, man.Layers...)
	for _, b := range blobs {
		if b.Size < 0 {
			return nil, fmt.Errorf("%s: blob %s declares a negative size", src, b.Digest)
		}
		if err := oci.ValidHash(b.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	res := &PullResult{Reference: src, Repository: c.where(), Manifest: mdesc, Slug: man.Annotations[oci.SlugAnnotation]}
	res.Blobs, err = eachBlob(ctx, blobs, opts.Concurrency, BlobPresent, func(ctx context.Context, b v1.Descriptor) (BlobResult, error) {
		return c.fetchBlob(ctx, store, b)
	})
	if err != nil {
		return nil, err
	}
	for _, b := range res.Blobs {
		res.Fetched += b.Bytes
		if b.Status == BlobPresent {
			res.Present += b.Size
		}
	}
	if _, _, err := store.Ingest(ctx, bytes.NewReader(mb), mdesc.Digest, mdesc.Size); err != nil {
		return nil, err
	}
	res.Fetched += int64(len(mb))
	raw, art, err := c.findMetadata(ctx, mdesc)
	if err != nil {
		return nil, c.explain("reading the bottle metadata of "+mdesc.Digest.String()+" from", err)
	}
	res.Metadata, res.MetadataArtifact = raw, art
	if st, err := openState(store); err == nil {
		hs := make([]v1.Hash, 0, len(blobs))
		for _, b := range blobs {
			hs = append(hs, b.Digest)
		}
		if err := st.record(c.reg, c.repo, hs); err != nil {
			opts.Logger.Warn("recording pulled blobs", "err", err)
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// fetchManifest reads the manifest ref names, refusing more than
// oci.MaxManifestSize bytes and checking its digest against the reference
// (by digest) or the registry's Docker-Content-Digest (by tag).
func (c *client) fetchManifest(ctx context.Context, ref name.Reference) (v1.Descriptor, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("manifests/"+ref.Identifier()), nil)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return v1.Descriptor{}, nil, c.explain("fetching manifest "+ref.Identifier()+" from", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > oci.MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s in %s declares %d bytes, more than bb accepts (%d)", ref.Identifier(), c.where(), resp.ContentLength, oci.MaxManifestSize)
	}
	mb, err := io.ReadAll(io.LimitReader(resp.Body, oci.MaxManifestSize+1))
	if err != nil {
		return v1.Descriptor{}, nil, fmt.Errorf("reading manifest %s from %s: %w", ref.Identifier(), c.where(), err)
	}
	if len(mb) > oci.MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s in %s is larger than bb accepts (%d bytes)", ref.Identifier(), c.where(), oci.MaxManifestSize)
	}
	sum := sha256.Sum256(mb)
	h := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
	want := resp.Header.Get("Docker-Content-Digest")
	if d, ok := ref.(name.Digest); ok {
		want = d.DigestStr()
	}
	if want != "" && want != h.String() {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s from %s has digest %s, want %s: refusing it", ref.Identifier(), c.where(), h, want)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return v1.Descriptor{MediaType: types.MediaType(mt), Digest: h, Size: int64(len(mb))}, mb, nil
}

// fetchBlob streams blob desc into the store unless it is there already.
func (c *client) fetchBlob(ctx context.Context, store *oci.Store, desc v1.Descriptor) (BlobResult, error) {
	res := BlobResult{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType}
	if n, err := store.Stat(ctx, desc.Digest); err == nil && n == desc.Size {
		res.Status = BlobPresent
		return res, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs/"+desc.Digest.String()), nil)
	if err != nil {
		return res, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return res, c.explain("fetching blob "+desc.Digest.String()+" from", err)
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
		return res, fmt.Errorf("blob %s from %s is %d bytes, the manifest says %d", desc.Digest, c.where(), resp.ContentLength, desc.Size)
	}
	var n atomic.Int64
	body := &counter{r: resp.Body, n: &n, progress: c.opts.Progress}
	_, _, err = store.Ingest(ctx, body, desc.Digest, desc.Size)
	res.Bytes = n.Load()
	if err != nil {
		return res, fmt.Errorf("fetching blob %s from %s: %w", desc.Digest, c.where(), err)
	}
	res.Status = BlobFetched
	return res, nil
}
