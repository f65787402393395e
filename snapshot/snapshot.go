package snapshot

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
)

// Source hands over a bottle's root filesystem as a tar stream. It is the
// only thing a backend must implement to be snapshotted.
type Source interface {
	// Stream starts the tar stream. Its Read reports the producer's
	// failure (for example tar exiting 2) in place of io.EOF, so a stream
	// that ends early never looks complete. Close stops the producer.
	Stream(ctx context.Context, req StreamRequest) (io.ReadCloser, error)
}

// StreamRequest tells a Source what to leave out.
type StreamRequest struct {
	// Excludes are paths relative to the root whose contents the stream
	// may leave out (Filter removes them anyway).
	Excludes []string
	// WhiteoutMark is the value of the WhiteoutMarkRecord PAX record that
	// a Source puts on each whiteout it makes (the deletions of an
	// incremental snapshot). It is secret to the host: any other entry
	// named like a whiteout is a file of the bottle, which Filter leaves
	// out (see FilterOptions.WhiteoutMark).
	WhiteoutMark string
}

// LayerTee is implemented by streams that take a copy of the layer's
// uncompressed tar as Build stores it: every byte whose sha256 is the
// layer's diffID, in order (for example to load it into a runtime while
// it is being compressed). A failed write only ends the copy.
type LayerTee interface {
	LayerTee() io.Writer
}

// Warner is implemented by streams that met non-fatal problems, such as
// GNU tar's exit status 1 (a file changed while it was read).
type Warner interface {
	Warnings() []string
}

// Base describes the image a bottle was started from.
type Base struct {
	// Ref is the base image's name, for annotations and history.
	Ref string
	// Config is the base image's config; Env, Entrypoint, Cmd, User,
	// WorkingDir, Labels, ExposedPorts and History are kept.
	Config *v1.ConfigFile
	// Layers are base layers already in the store that the snapshot
	// builds on (incremental snapshots). Empty for a flattened snapshot.
	Layers []LayerInfo
	// ConfigDigest, if set, is the digest of the base image's config in
	// the store: the manifest names it (oci.BaseConfigAnnotation) so that
	// GC keeps it for the next snapshot of the same base.
	ConfigDigest v1.Hash
}

// LayerInfo is a layer in the store.
type LayerInfo struct {
	Digest v1.Hash         `json:"digest"`
	DiffID v1.Hash         `json:"diffID"`
	Size   int64           `json:"size"`
	Media  types.MediaType `json:"mediaType"`
}

// Request is one snapshot.
type Request struct {
	Slug    string
	Backend string
	// SourceName is the container or directory the snapshot comes from.
	SourceName string
	Source     Source
	Base       Base
	// Excludes are added to DefaultExcludes.
	Excludes []string
	// CreatedBy goes into the history entry ("bb commit (docker exec tar)").
	CreatedBy string
	Layer     layer.Options
	Logger    *slog.Logger
	// Full makes a snapshot of one flattened layer even when the previous
	// snapshot has a file index an incremental commit could build on.
	Full bool
	// Now is the creation time; zero means time.Now().
	Now time.Time
}

// Result describes a stored snapshot.
type Result struct {
	Slug     string
	Tag      string
	TimeTag  string
	Manifest v1.Descriptor
	Config   v1.Descriptor
	// RawManifest and RawConfig are the manifest and config as stored.
	RawManifest, RawConfig []byte `json:"-"`
	Layer                  LayerInfo
	Stats                  FilterStats
	// NewBlobs are the blobs this snapshot added to the store.
	NewBlobs []v1.Hash
	// Current reports whether Publish made this snapshot the slug's
	// current one (false when a newer one already held the slug's tag);
	// Previous is the entry the slug's tag pointed at before (nil if none).
	Current  bool           `json:"-"`
	Previous *v1.Descriptor `json:"-"`
	// tagged is when Publish added it; started when Build began.
	tagged, started time.Time
	Warnings        []string
	Duration        time.Duration
	// Index is the file index stored with the snapshot (nil when the
	// Source cannot list the bottle); Publish attaches it.
	Index *v1.Descriptor
	// Incremental says whether the snapshot adds a layer to the previous
	// one, and what changed.
	Incremental *Incremental
}

// Stage names a step of the pipeline, for errors.
type Stage string

// Stages of a snapshot.
const (
	StageStream   Stage = "stream"
	StageFilter   Stage = "filter"
	StageCompress Stage = "compress"
	StageAssemble Stage = "assemble"
	StageStore    Stage = "store"
	StageLoad     Stage = "load"
	StageRecord   Stage = "record"
)

// Error is a failure of one stage of a snapshot.
type Error struct {
	Stage Stage
	Slug  string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("snapshot of %s failed at %s: %v", e.Slug, e.Stage, e.Err)
}
func (e *Error) Unwrap() error { return e.Err }

// Tag returns the store tag of the slug's current snapshot.
func Tag(slug string) string { return slug }

// TimeTag returns a history tag for the snapshot made at t:
// <slug>-<UTC time to the millisecond>-<4 random characters>. It sorts by
// time, and the suffix keeps two snapshots of the same millisecond apart
// (Publish also checks, under the store's lock, that it is unused). At
// most 126 characters for the longest slug, within the 128 of a tag.
func TimeTag(slug string, t time.Time) string {
	return slug + "-" + t.UTC().Format("20060102T150405.000Z") + "-" + randSuffix()
}

const suffixChars = "0123456789abcdefghijklmnopqrstuvwxyz"

func randSuffix() string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	for i := range b {
		b[i] = suffixChars[int(b[i])%len(suffixChars)]
	}
	return string(b[:])
}

// Publish makes res reachable in one locked update of index.json: it
// checks that every blob of the snapshot is in the store, adds its
// history tag (another suffix if the tag is taken) and moves the slug's
// tag to it unless a newer snapshot of the slug holds it already (a
// compare-and-swap on the creation time: of two concurrent commits the
// later snapshot is current, and both stay in the history). It then prunes
// the slug's history down to keep earlier snapshots (negative keeps all),
// never taking a snapshot published after this one was built.
func Publish(ctx context.Context, s *oci.Store, res *Result, keep int) error {
	if err := publish(ctx, s, res); err != nil {
		return err
	}
	if res.Index != nil {
		if err := PutIndex(ctx, s, res.Slug, res.Manifest, *res.Index); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("storing the file index (the next commit will be a full one): %v", err))
		}
	}
	if keep >= 0 {
		if err := prune(ctx, s, res.Slug, keep, res.cutoff()); err != nil {
			return fmt.Errorf("pruning old snapshots of %s: %w", res.Slug, err)
		}
	}
	return nil
}

// created is the snapshot's creation time (its annotation), or now.
func (r *Result) created() time.Time {
	if t, err := time.Parse(time.RFC3339Nano, r.Manifest.Annotations[oci.CreatedAnnotation]); err == nil {
		return t
	}
	return time.Now()
}

// cutoff is when the snapshot began: what was published later ran
// concurrently.
func (r *Result) cutoff() time.Time {
	if !r.started.IsZero() {
		return r.started
	}
	return r.created()
}

func publish(ctx context.Context, s *oci.Store, res *Result) error {
	if err := oci.ValidTag(res.Tag); err != nil {
		return err
	}
	if res.TimeTag == "" {
		res.TimeTag = TimeTag(res.Slug, res.created())
	}
	if err := oci.ValidTag(res.TimeTag); err != nil {
		return err
	}
	created := res.created()
	res.tagged = time.Now().UTC()
	tagged := res.tagged.Format(taggedFormat)
	return s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		res.Current, res.Previous = false, nil
		if err := s.Complete(ctx, res.Manifest); err != nil {
			return fmt.Errorf("snapshot %s is incomplete in the store (was it removed meanwhile?): %w", res.Manifest.Digest, err)
		}
		names := map[string]bool{}
		cur := -1
		for i, m := range idx.Manifests {
			n := m.Annotations[oci.RefNameAnnotation]
			names[n] = true
			if n == res.Tag {
				cur = i
			}
		}
		for names[res.TimeTag] {
			res.TimeTag = TimeTag(res.Slug, created)
		}
		entry := func(name string) v1.Descriptor {
			d := res.Manifest
			d.Annotations = map[string]string{}
			for k, v := range res.Manifest.Annotations {
				d.Annotations[k] = v
			}
			d.Annotations[oci.RefNameAnnotation] = name
			d.Annotations[TaggedAnnotation] = tagged
			return d
		}
		idx.Manifests = append(idx.Manifests, entry(res.TimeTag))
		if cur >= 0 {
			prev := idx.Manifests[cur]
			t, err := time.Parse(time.RFC3339Nano, prev.Annotations[oci.CreatedAnnotation])
			if err == nil && t.After(created) {
				return nil // a newer snapshot is current: ours joins the history
			}
			res.Previous = &prev
			idx.Manifests = append(idx.Manifests[:cur], idx.Manifests[cur+1:]...)
		}
		idx.Manifests = append(idx.Manifests, entry(res.Tag))
		res.Current = true
		return nil
	})
}

// TaggedAnnotation records, on index.json entries, when Publish added
// them: pruning takes only snapshots published before the one it keeps.
const TaggedAnnotation = "dev.bot-bottle.tagged"

// taggedFormat is RFC 3339 with fixed nanoseconds.
const taggedFormat = "2006-01-02T15:04:05.000000000Z07:00"

// taggedAfter reports whether m was published after t.
func taggedAfter(m v1.Descriptor, t time.Time) bool {
	mt, err := time.Parse(time.RFC3339Nano, m.Annotations[TaggedAnnotation])
	return err == nil && mt.After(t)
}

// Unpublish is the rollback of a Publish whose commit failed afterwards
// (for example writing committed-image): it removes res's history tag
// and, if res is the slug's current snapshot, gives the slug's tag back
// to the newest complete one of the previous snapshot and those
// published since; then
// it removes the blobs res added (Discard). It runs to the end even if
// ctx is cancelled.
func Unpublish(ctx context.Context, s *oci.Store, res *Result) error {
	ctx = context.WithoutCancel(ctx)
	err := s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		mine := func(m v1.Descriptor) bool {
			return m.Digest == res.Manifest.Digest && m.ArtifactType == "" &&
				m.Annotations[oci.CreatedAnnotation] == res.Manifest.Annotations[oci.CreatedAnnotation]
		}
		var cands []v1.Descriptor
		if res.Previous != nil {
			cands = append(cands, *res.Previous)
		}
		wasCurrent := false
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			n := m.Annotations[oci.RefNameAnnotation]
			switch {
			case n == res.TimeTag && mine(m):
				continue
			case n == res.Tag && mine(m):
				wasCurrent = true
				continue
			case n != res.Tag && m.ArtifactType == "" && m.Annotations[oci.SlugAnnotation] == res.Slug &&
				IsSnapshotTag(res.Slug, n) && !mine(m) && taggedAfter(m, res.tagged):
				cands = append(cands, m) // published since: a candidate too
			}
			kept = append(kept, m)
		}
		idx.Manifests = dropOrphanMetadata(kept)
		if !wasCurrent {
			return nil
		}
		var best *v1.Descriptor
		var bestT time.Time
		for i, c := range cands {
			if s.Complete(ctx, c) != nil {
				continue // pruned and collected meanwhile
			}
			t, _ := time.Parse(time.RFC3339Nano, c.Annotations[oci.CreatedAnnotation])
			if best == nil || t.After(bestT) {
				best, bestT = &cands[i], t
			}
		}
		if best == nil {
			return nil
		}
		d := *best
		d.Annotations = map[string]string{}
		for k, v := range best.Annotations {
			d.Annotations[k] = v
		}
		d.Annotations[oci.RefNameAnnotation] = res.Tag
		idx.Manifests = append(idx.Manifests, d)
		return nil
	})
	if derr := Discard(ctx, s, res); err == nil {
		err = derr
	}
	return err
}

// Discard removes the blobs a Build added, when the snapshot will not be
// published (a later stage failed). Blobs that were already in the store,
// or that another writer reused since, stay (see oci.Store.Discard).
func Discard(ctx context.Context, s *oci.Store, res *Result) error {
	return s.Discard(ctx, res.NewBlobs)
}

// Build streams req.Source into the store and writes the snapshot's
// config and manifest, without tagging them: nothing refers to the new
// blobs until Publish.
func Build(ctx context.Context, s *oci.Store, req Request) (res *Result, err error) {
	start := time.Now()
	b := &builder{s: s, req: &req, log: req.Logger}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Millisecond)
	if err := oci.ValidTag(req.Slug); err != nil {
		return nil, b.fail(StageAssemble, err)
	}
	b.excludes = append(append([]string{}, DefaultExcludes...), req.Excludes...)
	defer func() {
		if err != nil {
			_ = s.Discard(context.WithoutCancel(ctx), b.newBlobs)
		}
	}()
	// Plan: an incremental snapshot replaces req.Source and req.Base.
	inc, err := listAndPlan(ctx, s, &req, b.excludes)
	if err != nil {
		return nil, b.fail(StageStream, err)
	}
	if inc != nil && inc.created {
		b.newBlobs = append(b.newBlobs, inc.index.Digest)
	}
	if inc != nil && inc.warning != "" {
		b.warnings = append(b.warnings, inc.warning)
	}
	if inc != nil {
		b.reserved = inc.reserved
	}
	// Emit: the layer, then the config and manifest that name it.
	li, stats, err := b.layer(ctx)
	if err != nil {
		return nil, err
	}
	cfgDesc, mdesc, err := b.manifest(ctx, li, now)
	if err != nil {
		return nil, err
	}
	res = &Result{
		Slug: req.Slug, Tag: Tag(req.Slug), TimeTag: TimeTag(req.Slug, now),
		Manifest: mdesc, Config: cfgDesc, RawManifest: b.rawManifest, RawConfig: b.rawConfig,
		Layer: li, Stats: stats, Warnings: b.warnings,
		NewBlobs: b.newBlobs, Duration: time.Since(start), started: start,
	}
	if inc != nil {
		res.Index = inc.index
		inc.info.Depth = len(req.Base.Layers) + 1
		res.Incremental = &inc.info
	}
	return res, nil
}

// builder is one Build in progress: what it added to the store (removed
// again if it fails) and the warnings met on the way.
type builder struct {
	s        *oci.Store
	req      *Request
	log      *slog.Logger
	excludes []string
	newBlobs []v1.Hash
	warnings []string
	// reserved counts the entries of the bottle's listing left out for
	// their names (an incremental snapshot's plan).
	reserved FilterStats
	// rawConfig and rawManifest are the bytes manifest stored.
	rawConfig, rawManifest []byte
}

func (b *builder) fail(st Stage, err error) error {
	return &Error{Stage: st, Slug: b.req.Slug, Err: err}
}

// layer streams the source through Filter into a compressed layer in the
// store.
func (b *builder) layer(ctx context.Context) (LayerInfo, FilterStats, error) {
	req := b.req
	mark := rand.Text()
	stream, err := req.Source.Stream(ctx, StreamRequest{Excludes: b.excludes, WhiteoutMark: mark})
	if err != nil {
		return LayerInfo{}, FilterStats{}, b.fail(StageStream, err)
	}
	defer stream.Close()

	pr, pw := io.Pipe()
	statsc := make(chan FilterStats, 1)
	go func() {
		// smolvm unpacks layers with the Rust tar crate, which does not
		// read PAX sparse entries. Sparse files' data is spooled in the
		// store's ingest directory (private, on the store's disk, its
		// leftovers removed by the store's cleanup), not in a /tmp that
		// may be RAM.
		st, err := Filter(stream, pw, FilterOptions{Excludes: b.excludes, Warn: func(m string) {
			b.log.Warn(m)
		}, DenseSparse: req.Backend == "smolmachines", SpoolDir: filepath.Join(b.s.Root(), "ingest"), WhiteoutMark: mark})
		statsc <- st
		pw.CloseWithError(err)
	}()
	lyr, err := layer.Write(ctx, b.s, pr, layerOptions(req.Layer, stream))
	pr.CloseWithError(errors.New("snapshot aborted"))
	stats := <-statsc
	if err != nil {
		var re *layer.ReadError
		if errors.As(err, &re) {
			var ee *EntryError
			if errors.As(err, &ee) {
				return LayerInfo{}, stats, b.fail(StageFilter, re.Err)
			}
			return LayerInfo{}, stats, b.fail(StageStream, re.Err)
		}
		if ctx.Err() != nil {
			return LayerInfo{}, stats, b.fail(StageStream, ctx.Err())
		}
		return LayerInfo{}, stats, b.fail(StageCompress, err)
	}
	if w, ok := stream.(Warner); ok {
		b.warnings = append(b.warnings, w.Warnings()...)
	}
	stats.addReserved(b.reserved.Reserved, b.reserved.ReservedPaths...)
	if w := ReservedWarning(stats); w != "" {
		b.warnings = append(b.warnings, w)
	}
	for _, w := range b.warnings {
		b.log.Warn(w)
	}
	li := LayerInfo{}
	li.Media = lyr.Descriptor().MediaType
	li.Digest, _ = lyr.Digest()
	li.DiffID, _ = lyr.DiffID()
	li.Size, _ = lyr.Size()
	if lyr.Created() {
		b.newBlobs = append(b.newBlobs, li.Digest)
	}
	return li, stats, nil
}

// manifest stores the snapshot's config and manifest; the manifest's
// descriptor carries the annotations of its index.json entry.
func (b *builder) manifest(ctx context.Context, li LayerInfo, now time.Time) (cfgDesc, mdesc v1.Descriptor, err error) {
	cfg, man, err := assemble(*b.req, li, now)
	if err != nil {
		return cfgDesc, mdesc, b.fail(StageAssemble, err)
	}
	if cfgDesc, err = b.put(ctx, types.OCIConfigJSON, cfg); err != nil {
		return cfgDesc, mdesc, b.fail(StageStore, err)
	}
	man.Config = cfgDesc
	mb, err := json.Marshal(man)
	if err != nil {
		return cfgDesc, mdesc, b.fail(StageAssemble, err)
	}
	if mdesc, err = b.put(ctx, types.OCIManifestSchema1, mb); err != nil {
		return cfgDesc, mdesc, b.fail(StageStore, err)
	}
	mdesc.Annotations = map[string]string{
		oci.SlugAnnotation:    b.req.Slug,
		oci.BackendAnnotation: b.req.Backend,
		oci.CreatedAnnotation: now.Format(time.RFC3339Nano),
	}
	b.rawConfig, b.rawManifest = cfg, mb
	return cfgDesc, mdesc, nil
}

// put stores a small blob, remembering it as new if it was not there.
func (b *builder) put(ctx context.Context, mt types.MediaType, data []byte) (v1.Descriptor, error) {
	h, _, _ := v1.SHA256(bytes.NewReader(data))
	_, statErr := b.s.Stat(ctx, h)
	d, err := b.s.PutBytes(ctx, mt, data)
	if err == nil && statErr != nil {
		b.newBlobs = append(b.newBlobs, d.Digest)
	}
	return d, err
}

// ReservedWarning is the warning of a snapshot that left out files of
// the bottle whose names a layer reserves for whiteouts ("" if none).
func ReservedWarning(st FilterStats) string {
	if st.Reserved == 0 {
		return ""
	}
	return fmt.Sprintf("left out %d entries of the bottle whose names start with %q (%s): in an OCI layer such a name is a whiteout that would hide another file, so no snapshot can hold them; rename them to keep them",
		st.Reserved, layer.WhiteoutPrefix, ReservedList(st.Reserved, st.ReservedPaths))
}

// ReservedList names the first paths of n entries left out for their
// reserved names ("a, b and 3 more").
func ReservedList(n int64, paths []string) string {
	s := strings.Join(paths, ", ")
	if more := n - int64(len(paths)); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}

// layerOptions are opts with the stream's LayerTee, if it has one.
func layerOptions(opts layer.Options, stream io.Reader) layer.Options {
	if t, ok := stream.(LayerTee); ok && opts.Tee == nil {
		opts.Tee = t.LayerTee()
	}
	return opts
}

func assemble(req Request, li LayerInfo, now time.Time) ([]byte, *v1.Manifest, error) {
	cfg := &v1.ConfigFile{}
	if req.Base.Config != nil {
		b, err := json.Marshal(req.Base.Config)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, cfg); err != nil {
			return nil, nil, err
		}
	}
	if cfg.OS == "" {
		cfg.OS = "linux"
	}
	if cfg.Architecture == "" {
		cfg.Architecture = runtime.GOARCH
	}
	cfg.Created = v1.Time{Time: now}
	cfg.Container = ""
	//lint:ignore SA1019 the base image's docker_version does not describe this snapshot
	cfg.DockerVersion = ""
	cfg.RootFS = v1.RootFS{Type: "layers"}
	var layers []v1.Descriptor
	if len(req.Base.Layers) == 0 {
		cfg.History = nil // a flattened snapshot replaces the base's layers
	}
	for _, l := range req.Base.Layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		layers = append(layers, v1.Descriptor{MediaType: l.Media, Digest: l.Digest, Size: l.Size})
	}
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, li.DiffID)
	layers = append(layers, v1.Descriptor{MediaType: li.Media, Digest: li.Digest, Size: li.Size})
	createdBy := req.CreatedBy
	if createdBy == "" {
		createdBy = "bb commit"
	}
	cfg.History = append(cfg.History, v1.History{
		Created:   v1.Time{Time: now},
		CreatedBy: createdBy,
		Comment:   fmt.Sprintf("snapshot of %s (%s backend)", req.SourceName, backendName(req.Backend)),
	})
	cb, err := json.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	ann := map[string]string{
		oci.CreatedAnnotation: now.Format(time.RFC3339),
		oci.SlugAnnotation:    req.Slug,
		oci.BackendAnnotation: backendName(req.Backend),
		oci.SourceAnnotation:  req.SourceName,
	}
	if req.Base.Ref != "" {
		ann[oci.BaseImageAnnotation] = req.Base.Ref
		ann["org.opencontainers.image.base.name"] = req.Base.Ref
	}
	if req.Base.ConfigDigest != (v1.Hash{}) {
		ann[oci.BaseConfigAnnotation] = req.Base.ConfigDigest.String()
	}
	return cb, &v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Layers:        layers,
		Annotations:   ann,
	}, nil
}

func backendName(b string) string {
	if b == "" {
		return "docker"
	}
	return b
}

// Entry is one snapshot in the store.
type Entry struct {
	Slug     string
	Tag      string
	Current  bool
	Manifest v1.Descriptor
	Created  time.Time
	Backend  string
}

// List returns the snapshots in the store, newest first. With slug set,
// only that slug's.
func List(ctx context.Context, s *oci.Store, slug string) ([]Entry, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		return nil, err
	}
	return listIndex(idx, slug), nil
}

func listIndex(idx *v1.IndexManifest, slug string) []Entry {
	current := map[string]v1.Hash{}
	for _, m := range idx.Manifests {
		sl := m.Annotations[oci.SlugAnnotation]
		if sl != "" && m.Annotations[oci.RefNameAnnotation] == Tag(sl) {
			current[sl] = m.Digest
		}
	}
	var out []Entry
	for _, m := range idx.Manifests {
		sl := m.Annotations[oci.SlugAnnotation]
		tag := m.Annotations[oci.RefNameAnnotation]
		if sl == "" || tag == "" || tag == Tag(sl) || m.ArtifactType != "" || (slug != "" && sl != slug) {
			continue
		}
		t, _ := time.Parse(time.RFC3339Nano, m.Annotations[oci.CreatedAnnotation])
		out = append(out, Entry{Slug: sl, Tag: tag, Current: current[sl] == m.Digest, Manifest: m, Created: t, Backend: m.Annotations[oci.BackendAnnotation]})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Slug != out[j].Slug {
			return out[i].Slug < out[j].Slug
		}
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Tag > out[j].Tag
	})
	return out
}

// Prune keeps the current snapshot of slug and the keep newest others,
// untags the rest and removes blobs nothing references any more.
func Prune(ctx context.Context, s *oci.Store, slug string, keep int) error {
	return prune(ctx, s, slug, keep, time.Now())
}

// PruneFor prunes the history of res's slug after res was published and
// its commit completed (see Publish): snapshots published after res was
// built stay.
func PruneFor(ctx context.Context, s *oci.Store, res *Result, keep int) error {
	return prune(ctx, s, res.Slug, keep, res.cutoff())
}

// prune is Prune, deciding and untagging in one locked update of
// index.json, and taking only snapshots published before cutoff (those
// published later belong to commits that ran meanwhile: they stay).
func prune(ctx context.Context, s *oci.Store, slug string, keep int, cutoff time.Time) error {
	dropped := false
	err := s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		entries := listIndex(idx, slug)
		drop := map[string]bool{}
		n := 0
		for _, e := range entries {
			if e.Current {
				continue
			}
			n++
			if n <= keep {
				continue
			}
			if t, err := time.Parse(time.RFC3339Nano, e.Manifest.Annotations[TaggedAnnotation]); err == nil && !t.Before(cutoff) {
				continue
			}
			drop[e.Tag] = true
		}
		if len(drop) == 0 {
			return nil
		}
		dropped = true
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if drop[m.Annotations[oci.RefNameAnnotation]] {
				continue
			}
			kept = append(kept, m)
		}
		idx.Manifests = dropOrphanMetadata(kept)
		return nil
	})
	if err != nil || !dropped {
		return err
	}
	_, err = s.GC(ctx)
	return err
}

// dropOrphanMetadata removes the metadata artifacts whose snapshot no
// entry names any more: a metadata artifact goes with the last snapshot
// it describes.
func dropOrphanMetadata(ms []v1.Descriptor) []v1.Descriptor {
	tagged := map[string]bool{}
	for _, m := range ms {
		if m.ArtifactType != MetadataArtifactType {
			tagged[m.Digest.String()] = true
		}
	}
	out := ms[:0]
	for _, m := range ms {
		if sub := m.Annotations[oci.SubjectAnnotation]; sub != "" && !tagged[sub] {
			continue
		}
		out = append(out, m)
	}
	return out
}

// IsSnapshotTag reports whether tag is one of slug's tags.
func IsSnapshotTag(slug, tag string) bool {
	return tag == Tag(slug) || strings.HasPrefix(tag, slug+"-")
}
