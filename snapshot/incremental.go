package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bot-bottle/bb/internal/iox"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/bot-bottle/bb/fileindex"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
)

// Lister is implemented by Sources that can list the bottle's files and
// stream a chosen set of entries: their second and later commits are
// incremental (one new layer on top of the previous snapshot's).
type Lister interface {
	// List returns a listing of the root filesystem in fileindex's format
	// (fileindex.FindScript in the bottle, fileindex.Walk on the host).
	List(ctx context.Context, req StreamRequest) (io.ReadCloser, error)
	// StreamPaths returns a tar stream of exactly the given entries
	// (paths relative to the root, no recursion into directories).
	StreamPaths(ctx context.Context, req StreamRequest, paths []string) (io.ReadCloser, error)
}

// MaxChain is the number of layers at which the next commit is a full
// one (one flattened layer) instead of one more layer on the chain.
// Docker refuses images of more than ~127 layers, and overlay2 mounts at
// most 128 lower directories; 64 leaves half of that to images built FROM
// a snapshot, keeps the extraction of a chain (one pass per layer) and the
// whiteouts it applies cheap, and costs one full commit per 64.
const MaxChain = 64

// FullRatio is the share of the bottle's entries with new inode numbers
// since the previous snapshot (as after a resume, where every file was
// extracted again) above which the commit is a full one rather than a
// layer as big as the tree.
const FullRatio = 0.5

// The file index travels with a snapshot as an OCI artifact whose subject
// is the snapshot's manifest, recorded in index.json like the metadata
// artifact: gc keeps it while index.json lists it, and Prune drops it
// with the last tag of its subject.
const (
	// IndexArtifactType is the artifactType of the file index manifest.
	IndexArtifactType = "application/vnd.bot-bottle.fileindex.v1"
	// IndexMediaType is the media type of its one layer (a gzipped listing).
	IndexMediaType types.MediaType = "application/vnd.bot-bottle.fileindex.v1+gzip"
)

// Incremental says how a snapshot relates to the previous one.
type Incremental struct {
	// Parent is the previous snapshot this one adds a layer to (empty for a
	// full snapshot).
	Parent string `json:"parent,omitempty"`
	// Depth is the number of layers of the new snapshot.
	Depth int `json:"depth"`
	// Full says why the snapshot is a full one, when it is.
	Full    string `json:"full,omitempty"`
	Entries int    `json:"entries"`
	Added   int    `json:"added"`
	Changed int    `json:"changed"`
	Deleted int    `json:"deleted"`
	// Bytes is the size of the added and changed regular files.
	Bytes int64 `json:"bytes"`
	// Listing is how long listing and comparing took.
	Listing time.Duration `json:"listing"`
}

type parentSnap struct {
	desc   v1.Descriptor
	man    *v1.Manifest
	cfg    *v1.ConfigFile
	index  v1.Descriptor
	layers []LayerInfo
}

// findParent returns the slug's current snapshot if the next commit can
// add a layer to it, else nil and the reason.
func findParent(ctx context.Context, s *oci.Store, req Request) (*parentSnap, string, error) {
	if req.Full {
		return nil, "--full", nil
	}
	desc, err := s.Resolve(ctx, Tag(req.Slug))
	if errors.Is(err, oci.ErrNotFound) {
		return nil, "first snapshot", nil
	}
	if err != nil {
		return nil, "", err
	}
	if b := desc.Annotations[oci.BackendAnnotation]; b != backendName(req.Backend) {
		return nil, fmt.Sprintf("previous snapshot is from the %s backend", b), nil
	}
	man, err := s.Manifest(ctx, desc)
	if err != nil {
		return nil, "", err
	}
	if len(man.Layers) >= MaxChain {
		return nil, fmt.Sprintf("the chain has %d layers (squashed at %d)", len(man.Layers), MaxChain), nil
	}
	idx, err := IndexOf(ctx, s, desc.Digest)
	if errors.Is(err, oci.ErrNotFound) {
		return nil, "previous snapshot has no file index", nil
	}
	if err != nil {
		return nil, "", err
	}
	cfg, err := s.Config(ctx, man.Config.Digest)
	if err != nil {
		return nil, "", err
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, "previous snapshot's config and manifest disagree on its layers", nil
	}
	p := &parentSnap{desc: desc, man: man, cfg: cfg, index: idx}
	for i, l := range man.Layers {
		p.layers = append(p.layers, LayerInfo{Digest: l.Digest, DiffID: cfg.RootFS.DiffIDs[i], Size: l.Size, Media: l.MediaType})
	}
	return p, "", nil
}

// incremental is the part of a commit that lists the bottle.
type incremental struct {
	info  Incremental
	index *v1.Descriptor
	// created: the index blob was new to the store.
	created bool
	warning string
	// reserved counts the listing's entries left out for their names.
	reserved FilterStats
}

// listAndPlan lists the bottle (when its Source is a Lister), stores the
// listing as the new snapshot's file index and, when the previous
// snapshot has one, turns req into an incremental commit: its Source
// streams only the changed entries after the whiteouts, its Base is the
// previous snapshot. A listing that fails only costs the increment: the
// commit goes on as a full one, without an index.
func listAndPlan(ctx context.Context, s *oci.Store, req *Request, excludes []string) (*incremental, error) {
	l, ok := req.Source.(Lister)
	if !ok {
		return nil, nil
	}
	start := time.Now()
	par, why, err := findParent(ctx, s, *req)
	if err != nil {
		return nil, err
	}
	noIndex := func(err error) (*incremental, error) {
		msg := fmt.Sprintf("listing the bottle's files failed, so this is a full snapshot and the next one will be too: %v", err)
		return &incremental{info: Incremental{Full: "no file listing"}, warning: msg}, nil
	}
	lst, err := l.List(ctx, StreamRequest{Excludes: excludes})
	if err != nil {
		return noIndex(err)
	}
	defer lst.Close()
	w, err := s.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
	tee := io.TeeReader(&sticky{r: lst}, gz)
	var plan *fileindex.Plan
	entries, warning := 0, ""

	if par != nil {
		open := func() (io.ReadCloser, error) { return openIndex(ctx, s, par.index) }
		plan, err = fileindex.Diff(ctx, open, tee, fileindex.Options{MaxMemory: planMemory})
		if plan != nil {
			entries = plan.Entries
		}
		var big *fileindex.TooLargeError
		if errors.As(err, &big) {
			// The listing is still stored: the next commit compares with it.
			why, par, plan, err = big.Error()+", so this is a full snapshot", nil, nil, nil
			warning = why // logged with the commit's other warnings
		}
	} else {
		var r *fileindex.Reader
		if r, err = fileindex.NewReader(tee); err == nil {
			var e fileindex.Entry
			for err = r.Next(&e); err == nil; err = r.Next(&e) {
				entries++
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
	}
	if err == nil {
		_, err = io.Copy(io.Discard, tee) // the producer's exit status
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return noIndex(err)
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	h, n, err := w.Commit(ctx, v1.Hash{}, -1)
	if err != nil {
		return nil, err
	}
	inc := &incremental{index: &v1.Descriptor{MediaType: IndexMediaType, Digest: h, Size: n}, created: w.Created()}
	inc.info.Entries = entries
	inc.info.Full = why
	inc.warning = warning
	if par != nil && plan != nil && float64(plan.Renumbered) > FullRatio*float64(plan.Entries) {
		inc.info.Full = fmt.Sprintf("%d of %d entries have new inodes (as after a resume)", plan.Renumbered, plan.Entries)
		par = nil
	}
	if par != nil {
		// Only the plan's paths are streamed, so the filter sees none of
		// the reserved names the listing had: the plan counts them. (A
		// full stream goes through the filter, which counts them itself.)
		inc.reserved.addReserved(int64(plan.Reserved), plan.ReservedPaths...)
		inc.info.Parent = par.desc.Digest.String()
		inc.info.Added, inc.info.Changed, inc.info.Deleted, inc.info.Bytes = plan.Added, plan.Changed, plan.Deleted, plan.Bytes
		req.Source = &partialSource{l: l, plan: plan}
		cfg := *par.cfg
		req.Base = Base{Ref: req.Base.Ref, Config: &cfg, Layers: par.layers}
		if req.CreatedBy != "" {
			req.CreatedBy += ", incremental"
		}
	}
	inc.info.Listing = time.Since(start)
	return inc, nil
}

// planMemory bounds what the comparison of two listings holds
// (fileindex.Options.MaxMemory; 0: its default). Tests lower it.
var planMemory int64

func openIndex(ctx context.Context, s *oci.Store, d v1.Descriptor) (io.ReadCloser, error) {
	f, err := s.Blob(ctx, d.Digest)
	if err != nil {
		return nil, err
	}
	raw := &iox.HashingReader{R: f, H: sha256.New()}
	gz, err := gzip.NewReader(raw)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("file index %s: %w", d.Digest, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{&indexReader{gz: gz, raw: raw, want: d}, f}, nil
}

// indexReader is a stored file index, decompressed: at its end the blob
// must have been read whole and hash to its digest, else the end is an
// error (what the index says decides what a commit leaves out).
type indexReader struct {
	gz   io.Reader
	raw  *iox.HashingReader
	want v1.Descriptor
}

func (r *indexReader) Read(p []byte) (int, error) {
	n, err := r.gz.Read(p)
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	if _, err := io.Copy(io.Discard, r.raw); err != nil {
		return n, fmt.Errorf("file index %s: %w", r.want.Digest, err)
	}
	if got := hex.EncodeToString(r.raw.H.Sum(nil)); r.raw.N != r.want.Size || got != r.want.Digest.Hex || r.want.Digest.Algorithm != "sha256" {
		return n, fmt.Errorf("file index %s is damaged in the store (it hashes to sha256:%s): run bb doctor", r.want.Digest, got)
	}
	return n, io.EOF
}

// partialSource streams the whiteouts of a plan, then the changed entries.
type partialSource struct {
	l    Lister
	plan *fileindex.Plan
}

func (p *partialSource) Stream(ctx context.Context, req StreamRequest) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	wh := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
			PAXRecords: map[string]string{WhiteoutMarkRecord: req.WhiteoutMark}})
	}
	for _, d := range p.plan.Opaque {
		if err := wh(d + "/" + layer.OpaqueWhiteout); err != nil {
			return nil, err
		}
	}
	for _, d := range p.plan.Whiteouts {
		if err := wh(layer.WhiteoutName(d)); err != nil {
			return nil, err
		}
	}
	if len(p.plan.Paths) == 0 {
		if err := tw.Close(); err != nil {
			return nil, err
		}
		return io.NopCloser(&buf), nil
	}
	if err := tw.Flush(); err != nil { // no end-of-archive: the entries follow
		return nil, err
	}
	rc, err := p.l.StreamPaths(ctx, req, p.plan.Paths)
	if err != nil {
		return nil, err
	}
	return &joined{Reader: io.MultiReader(&buf, rc), rc: rc}, nil
}

type joined struct {
	io.Reader
	rc io.ReadCloser
}

func (j *joined) Close() error { return j.rc.Close() }

func (j *joined) Warnings() []string {
	if w, ok := j.rc.(Warner); ok {
		return w.Warnings()
	}
	return nil
}

// IndexOf returns the descriptor of the file index stored for the
// snapshot subject, or oci.ErrNotFound.
func IndexOf(ctx context.Context, s *oci.Store, subject v1.Hash) (v1.Descriptor, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, m := range idx.Manifests {
		// Only an entry PutIndex recorded (untagged, naming the slug): bb
		// serve records a manifest pushed into it (a referrer, or by tag)
		// with the artifactType and subject the pusher chose, and a file
		// index decides what a commit leaves out.
		if m.ArtifactType != IndexArtifactType || m.Annotations[oci.SubjectAnnotation] != subject.String() ||
			m.Annotations[oci.SlugAnnotation] == "" || m.Annotations[oci.RefNameAnnotation] != "" {
			continue
		}
		man, err := s.Manifest(ctx, m)
		if err != nil {
			return v1.Descriptor{}, fmt.Errorf("reading file index artifact: %w", err)
		}
		for _, l := range man.Layers {
			if l.MediaType == IndexMediaType {
				return l, nil
			}
		}
	}
	return v1.Descriptor{}, fmt.Errorf("file index of %s: %w", subject, oci.ErrNotFound)
}

// OpenIndex opens the file index of snapshot subject (a listing, see
// fileindex), or returns oci.ErrNotFound.
func OpenIndex(ctx context.Context, s *oci.Store, subject v1.Hash) (io.ReadCloser, error) {
	d, err := IndexOf(ctx, s, subject)
	if err != nil {
		return nil, err
	}
	return openIndex(ctx, s, d)
}

// PutIndex records the file index blob (already in the store) as an
// artifact of subject in index.json, replacing an earlier one.
func PutIndex(ctx context.Context, s *oci.Store, slug string, subject, blob v1.Descriptor) error {
	eh, _, _ := v1.SHA256(bytes.NewReader(emptyJSON))
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := struct {
		SchemaVersion int64           `json:"schemaVersion"`
		MediaType     types.MediaType `json:"mediaType"`
		ArtifactType  string          `json:"artifactType"`
		Config        v1.Descriptor   `json:"config"`
		Layers        []v1.Descriptor `json:"layers"`
		Subject       *v1.Descriptor  `json:"subject"`
	}{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: IndexArtifactType,
		Config:  v1.Descriptor{MediaType: EmptyMediaType, Digest: eh, Size: int64(len(emptyJSON)), Data: emptyJSON},
		Layers:  []v1.Descriptor{{MediaType: IndexMediaType, Digest: blob.Digest, Size: blob.Size}},
		Subject: &sub,
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, _, err := s.Ingest(ctx, bytes.NewReader(emptyJSON), eh, int64(len(emptyJSON))); err != nil {
		return err
	}
	d, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		return err
	}
	d.ArtifactType = IndexArtifactType
	d.Annotations = map[string]string{oci.SlugAnnotation: slug, oci.SubjectAnnotation: subject.Digest.String()}
	return s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.ArtifactType == IndexArtifactType && m.Annotations[oci.SubjectAnnotation] == subject.Digest.String() {
				continue
			}
			kept = append(kept, m)
		}
		idx.Manifests = append(kept, d)
		return nil
	})
}

// sticky repeats the first error (io.EOF included) of r instead of
// reading r again: a stream whose producer was reaped must not be read
// after its end.
type sticky struct {
	r   io.Reader
	err error
}

func (s *sticky) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}
