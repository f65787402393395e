package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
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

// Limits on what a registry may hand bb.
const (
	// MaxLayers bounds the layers of a pulled image.
	MaxLayers = 1000
	// MaxIndexEntries bounds the entries of a pulled image index.
	MaxIndexEntries = 1024
)

// Pull fetches the image src ("registry/repo[:tag|@digest]") into the
// store: manifest, config and layers, each verified against its digest
// and size while it streams, each layer's uncompressed content against
// its config's diff_id in the same pass, and the bottle's metadata
// referrer. An index is resolved to its linux image for this host's
// architecture. Anything that is not an image is refused before a blob
// is downloaded, and so is what opts.BeforeFetch refuses. On error, the
// blobs the pull added are removed again. The image stays untagged; tag
// it (bottle.Manager.Adopt) before the store's GC grace period ends, or
// remove PullResult.NewBlobs with Store.Discard.
func Pull(ctx context.Context, store *oci.Store, src string, opts Options) (res *PullResult, err error) {
	start := time.Now()
	opts, err = opts.withDefaults()
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
	mdesc, mb, err := c.resolveImage(ctx, src, ref)
	if err != nil {
		return nil, err
	}
	man, err := checkManifest(src, &mdesc, mb)
	if err != nil {
		return nil, err
	}
	res = &PullResult{Reference: src, Repository: c.where(), Manifest: mdesc, Slug: man.Annotations[oci.SlugAnnotation]}
	if opts.BeforeFetch != nil {
		if err := opts.BeforeFetch(ctx, res); err != nil {
			return nil, err
		}
	}
	// From here on, what the pull adds to the store goes again on error.
	store, added := store.Track()
	defer func() {
		if err != nil {
			if derr := added.Rollback(ctx); derr != nil {
				err = fmt.Errorf("%w (and removing the blobs the pull added failed: %v)", err, derr)
			}
			res = nil
		}
	}()
	if res.Blobs, err = c.fetchImage(ctx, store, src, man); err != nil {
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
	if res.Metadata, res.MetadataArtifact, err = c.pullMetadata(ctx, mdesc); err != nil {
		return nil, err
	}
	c.recordPulled(store, man)
	res.NewBlobs = added.Blobs()
	res.Duration = time.Since(start)
	return res, nil
}

// resolveImage fetches the manifest ref names; an index is resolved to
// its linux image for this host's architecture.
func (c *client) resolveImage(ctx context.Context, src string, ref name.Reference) (v1.Descriptor, []byte, error) {
	mdesc, mb, err := c.fetchManifest(ctx, ref)
	if err != nil || !isIndexType(mdesc.MediaType, mb) {
		return mdesc, mb, err
	}
	d, err := pickImage(src, mb)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	mdesc, mb, err = c.fetchManifest(ctx, ref.Context().Digest(d.Digest.String()))
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	if mdesc.Size != d.Size {
		return v1.Descriptor{}, nil, fmt.Errorf("%s: manifest %s from %s has %d bytes, its index says %d: refusing it", src, d.Digest, c.where(), mdesc.Size, d.Size)
	}
	if mdesc.MediaType == "" {
		mdesc.MediaType = d.MediaType
	}
	return mdesc, mb, nil
}

// fetchImage downloads man's config and then its layers into the store,
// each layer checked against the config's diff_id as it streams.
func (c *client) fetchImage(ctx context.Context, store *oci.Store, src string, man *pullManifest) ([]BlobResult, error) {
	// The config first: its diff_ids are what the layers are checked
	// against as they stream.
	cres, err := c.fetchBlob(ctx, store, man.Config, nil)
	if err != nil {
		return nil, err
	}
	cfg, err := store.Config(ctx, man.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: image config %s from %s: %w", src, man.Config.Digest, c.where(), err)
	}
	if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, fmt.Errorf("%s: image config %s lists %d diff_ids (rootfs type %q) for %d layers: refusing it", src, man.Config.Digest, len(cfg.RootFS.DiffIDs), cfg.RootFS.Type, len(man.Layers))
	}
	want := map[v1.Hash]v1.Hash{}
	for i, l := range man.Layers {
		if d, ok := want[l.Digest]; ok && d != cfg.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("%s: layer %s is listed twice with different diff_ids", src, l.Digest)
		}
		want[l.Digest] = cfg.RootFS.DiffIDs[i]
	}
	lres, err := eachBlob(ctx, man.Layers, c.opts.Concurrency, BlobPresent, func(ctx context.Context, b v1.Descriptor) (BlobResult, error) {
		return c.fetchBlob(ctx, store, b, func(comp layer.Compression, diff v1.Hash, derr error) error {
			if err := layer.CheckDiffID(b.MediaType, comp, diff, derr, want[b.Digest]); err != nil {
				return fmt.Errorf("layer %s from %s does not match its config: %w: refusing it", b.Digest, c.where(), err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return append([]BlobResult{cres}, lres...), nil
}

// pullMetadata reads the bottle metadata attached to the image mdesc (nil
// when it has none), giving up when the registry does not answer within
// twice the idle timeout.
func (c *client) pullMetadata(ctx context.Context, mdesc v1.Descriptor) ([]byte, *v1.Descriptor, error) {
	wait := 2 * c.opts.IdleTimeout
	mctx, cancel := context.WithTimeoutCause(ctx, wait, fmt.Errorf("no answer from %s within %s", c.where(), wait))
	defer cancel()
	raw, art, err := c.findMetadata(mctx, mdesc)
	if err != nil {
		if cause := context.Cause(mctx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		return nil, nil, c.explain("reading the bottle metadata of "+mdesc.Digest.String()+" from", err)
	}
	return raw, art, nil
}

// recordPulled notes where man's blobs came from, so that a later push
// to the same registry can mount them instead of sending them.
func (c *client) recordPulled(store *oci.Store, man *pullManifest) {
	st, err := openState(store)
	if err != nil {
		return
	}
	hs := []v1.Hash{man.Config.Digest}
	for _, b := range man.Layers {
		hs = append(hs, b.Digest)
	}
	if err := st.record(c.reg, c.repo, hs); err != nil {
		c.opts.Logger.Warn("recording pulled blobs", "err", err)
	}
}

// pullManifest is an image manifest as Pull reads it.
type pullManifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// checkManifest parses an image manifest and refuses, before any blob is
// downloaded, what is not an image bb can restore.
func checkManifest(src string, mdesc *v1.Descriptor, mb []byte) (*pullManifest, error) {
	var man pullManifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, fmt.Errorf("parsing manifest %s of %s: %w", mdesc.Digest, src, err)
	}
	if man.MediaType != "" && man.MediaType != mdesc.MediaType {
		mdesc.MediaType = man.MediaType
	}
	switch mdesc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
	case types.OCIImageIndex, types.DockerManifestList:
		return nil, fmt.Errorf("%s is an index nested in an index: pull one platform's manifest by digest", src)
	default:
		return nil, fmt.Errorf("%s is a %q, not an image manifest: nothing was downloaded", src, mdesc.MediaType)
	}
	if man.SchemaVersion != 2 {
		return nil, fmt.Errorf("%s: manifest has schemaVersion %d, not 2", src, man.SchemaVersion)
	}
	if man.ArtifactType != "" || (man.Config.MediaType != types.OCIConfigJSON && man.Config.MediaType != types.DockerConfigJSON) {
		what := man.ArtifactType
		if what == "" {
			what = string(man.Config.MediaType)
		}
		return nil, fmt.Errorf("%s is an artifact (%s), not a container image: nothing was downloaded", src, what)
	}
	if man.Config.Size > oci.MaxConfigSize {
		return nil, fmt.Errorf("%s: image config declares %d bytes, more than bb accepts (%d)", src, man.Config.Size, oci.MaxConfigSize)
	}
	if len(man.Layers) > MaxLayers {
		return nil, fmt.Errorf("%s has %d layers; bb pulls at most %d (MaxLayers)", src, len(man.Layers), MaxLayers)
	}
	for _, b := range append([]v1.Descriptor{man.Config}, man.Layers...) {
		if b.Size < 0 {
			return nil, fmt.Errorf("%s: blob %s declares a negative size", src, b.Digest)
		}
		if err := oci.ValidHash(b.Digest); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
	}
	for i, l := range man.Layers {
		if _, ok := layer.CompressionOf(l.MediaType); !ok {
			return nil, fmt.Errorf("%s: layer %d has media type %q, not a layer bb can restore: nothing was downloaded", src, i, l.MediaType)
		}
	}
	return &man, nil
}

// fetchManifest reads the manifest ref names, refusing more than
// oci.MaxManifestSize bytes and checking its digest against the reference
// (by digest) or the registry's Docker-Content-Digest (by tag).
func (c *client) fetchManifest(ctx context.Context, ref name.Reference) (v1.Descriptor, []byte, error) {
	iw := c.watch(ctx)
	defer iw.stop()
	ctx = iw.ctx
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("manifests/"+ref.Identifier()), nil)
	if err != nil {
		return v1.Descriptor{}, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return v1.Descriptor{}, nil, iw.explain("manifest "+ref.Identifier(), c.explain("fetching manifest "+ref.Identifier()+" from", err))
	}
	defer resp.Body.Close()
	if resp.ContentLength > oci.MaxManifestSize {
		return v1.Descriptor{}, nil, fmt.Errorf("manifest %s in %s declares %d bytes, more than bb accepts (%d)", ref.Identifier(), c.where(), resp.ContentLength, oci.MaxManifestSize)
	}
	body := &iox.CountingReader{R: resp.Body, OnRead: func(int64) { iw.touch() }}
	mb, err := io.ReadAll(io.LimitReader(body, oci.MaxManifestSize+1))
	if err != nil {
		return v1.Descriptor{}, nil, iw.explain("manifest "+ref.Identifier(), fmt.Errorf("reading manifest %s from %s: %w", ref.Identifier(), c.where(), err))
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

// errStalled is the cause of a transfer cancelled by the idle timeout.
var errStalled = errors.New("stalled")

// idleWatch cancels a transfer that moves no byte for the idle timeout.
type idleWatch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	d      time.Duration
	where  string
}

// watch starts an idle watch over a transfer from c; the transfer uses
// the returned watch's ctx and calls touch whenever bytes arrive.
func (c *client) watch(ctx context.Context) *idleWatch {
	w := &idleWatch{d: c.opts.IdleTimeout, where: c.where()}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	w.timer = time.AfterFunc(w.d, func() { w.cancel(errStalled) })
	return w
}

func (w *idleWatch) touch() { w.timer.Reset(w.d) }

func (w *idleWatch) stop() {
	w.timer.Stop()
	w.cancel(nil)
}

// explain replaces err by a stall message when the watch cancelled the
// transfer of what.
func (w *idleWatch) explain(what string, err error) error {
	if err != nil && errors.Is(context.Cause(w.ctx), errStalled) {
		return fmt.Errorf("fetching %s from %s: no data for %s: the registry stalled; try again, or raise --idle-timeout", what, w.where, w.d)
	}
	return err
}

// fetchBlob streams blob desc into the store unless it is there already,
// verifying its digest and size and, when check is set, the layer's
// diffID (computed in the same pass) before the blob is committed. A
// blob the store already has is checked by reading it. A transfer that
// moves no byte for Options.IdleTimeout is abandoned.
func (c *client) fetchBlob(ctx context.Context, store *oci.Store, desc v1.Descriptor, check func(layer.Compression, v1.Hash, error) error) (BlobResult, error) {
	res := BlobResult{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType}
	if n, err := store.Stat(ctx, desc.Digest); err == nil && n == desc.Size {
		if check != nil {
			if err := checkStored(ctx, store, desc.Digest, check); err != nil {
				return res, err
			}
		}
		res.Status = BlobPresent
		return res, nil
	}
	iw := c.watch(ctx)
	defer iw.stop()
	ctx = iw.ctx
	stalled := func(err error) error { return iw.explain("blob "+desc.Digest.String(), err) }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("blobs/"+desc.Digest.String()), nil)
	if err != nil {
		return res, err
	}
	resp, err := c.do(req, http.StatusOK)
	if err != nil {
		return res, stalled(c.explain("fetching blob "+desc.Digest.String()+" from", err))
	}
	defer resp.Body.Close()
	if resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
		return res, fmt.Errorf("blob %s from %s is %d bytes, the manifest says %d", desc.Digest, c.where(), resp.ContentLength, desc.Size)
	}
	body := &iox.CountingReader{R: resp.Body, OnRead: func(d int64) {
		iw.touch()
		c.opts.Progress(d)
	}}
	w, err := store.NewWriter(ctx)
	if err != nil {
		return res, err
	}
	defer w.Close()
	dw := layer.NewDiffIDWriter()
	defer dw.Close()
	var dst io.Writer = w
	if check != nil {
		dst = io.MultiWriter(w, dw)
	}
	// One byte more than announced is enough to refuse an endless blob.
	_, err = io.Copy(dst, io.LimitReader(body, desc.Size+1))
	res.Bytes = body.Count()
	if err != nil {
		return res, stalled(fmt.Errorf("fetching blob %s from %s: %w", desc.Digest, c.where(), err))
	}
	if w.Size() != desc.Size || w.Digest() != desc.Digest {
		if w.Size() > desc.Size {
			return res, fmt.Errorf("blob %s from %s is longer than the %d bytes the manifest says: refusing it", desc.Digest, c.where(), desc.Size)
		}
		return res, fmt.Errorf("blob %s from %s: %w", desc.Digest, c.where(), &oci.DigestMismatchError{WantDigest: desc.Digest, GotDigest: w.Digest(), WantSize: desc.Size, GotSize: w.Size()})
	}
	if check != nil {
		comp, diff, derr := dw.Finish(desc.Digest)
		if err := check(comp, diff, derr); err != nil {
			return res, err
		}
	}
	if _, _, err := w.Commit(ctx, desc.Digest, desc.Size); err != nil {
		return res, fmt.Errorf("storing blob %s from %s: %w", desc.Digest, c.where(), err)
	}
	res.Status = BlobFetched
	return res, nil
}

// checkStored runs check on the diffID of a blob already in the store.
func checkStored(ctx context.Context, store *oci.Store, h v1.Hash, check func(layer.Compression, v1.Hash, error) error) error {
	f, err := store.Blob(ctx, h)
	if err != nil {
		return err
	}
	defer f.Close()
	dw := layer.NewDiffIDWriter()
	defer dw.Close()
	if _, err := io.Copy(dw, iox.ContextReader(ctx, f)); err != nil {
		return fmt.Errorf("reading blob %s from the store: %w", h, err)
	}
	comp, diff, derr := dw.Finish(h)
	return check(comp, diff, derr)
}
