package bottle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultKeep is how many earlier snapshots of a slug a commit keeps.
const DefaultKeep = 3

// Manager runs commit, resume and list over a set of runtimes.
type Manager struct {
	Home     state.Home
	Store    *oci.Store
	Runtimes map[string]Runtime
	Logger   *slog.Logger
}

// Runtime returns the runtime for backend ("" means docker).
func (m *Manager) Runtime(backend string) (Runtime, error) {
	if backend == "" {
		backend = Docker
	}
	rt, ok := m.Runtimes[backend]
	if !ok {
		var names []string
		for n := range m.Runtimes {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("unknown backend %q (known: %v)", backend, names)
	}
	return rt, nil
}

// Backend resolves a bottle's backend: override if set, else its
// metadata.json, else docker.
func (m *Manager) Backend(slug, override string) (string, error) {
	if override != "" {
		return override, nil
	}
	md, err := m.Home.ReadMetadata(slug)
	if err != nil {
		return "", err
	}
	if md == nil || md.Backend == "" {
		return Docker, nil
	}
	return md.Backend, nil
}

func (m *Manager) log() *slog.Logger {
	if m.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return m.Logger
}

// CommitOptions tune Commit.
type CommitOptions struct {
	Backend string
	Prepare PrepareOptions
	// NoLoad stores the snapshot without loading it into the runtime.
	NoLoad bool
	Keep   int
	Layer  layer.Options
}

// CommitResult reports a commit.
type CommitResult struct {
	Slug      string                   `json:"slug"`
	Backend   string                   `json:"backend"`
	Committed string                   `json:"committed"`
	Snapshot  *snapshot.Result         `json:"-"`
	Digest    string                   `json:"digest"`
	Layer     snapshot.LayerInfo       `json:"layer"`
	Stats     snapshot.FilterStats     `json:"stats"`
	Warnings  []string                 `json:"warnings,omitempty"`
	Duration  time.Duration            `json:"duration"`
	Timings   map[string]time.Duration `json:"timings"`
	// Incremental is set when the backend can list the bottle: whether
	// the snapshot adds a layer to the previous one, and what changed.
	Incremental *snapshot.Incremental `json:"incremental,omitempty"`
}

// Commit snapshots a running bottle. On error nothing it wrote remains:
// the previous snapshot, committed-image and the store are as they were.
func (m *Manager) Commit(ctx context.Context, slug string, opts CommitOptions) (*CommitResult, error) {
	start := time.Now()
	if err := state.ValidSlug(slug); err != nil {
		return nil, err
	}
	backend, err := m.Backend(slug, opts.Backend)
	if err != nil {
		return nil, err
	}
	rt, err := m.Runtime(backend)
	if err != nil {
		return nil, err
	}
	if err := checkName(rt, slug); err != nil {
		return nil, err
	}
	popts := opts.Prepare
	if popts.Previous == nil {
		popts.Previous = m.previousConfig(ctx, slug)
	}
	popts.Loading = !opts.NoLoad
	info, prep, err := m.prepare(ctx, rt, slug, backend, popts)
	if err != nil {
		return nil, err
	}
	if prep.Release != nil {
		defer prep.Release()
	}
	timings := map[string]time.Duration{}
	t0 := time.Now()
	res, err := snapshot.Build(ctx, m.Store, snapshot.Request{
		Slug: slug, Backend: backend, SourceName: info.Name,
		Source: prep.Source, Base: prep.Base, Excludes: prep.Excludes,
		CreatedBy: prep.CreatedBy, Layer: opts.Layer, Logger: m.log(), Full: opts.Prepare.Full,
	})
	if err != nil {
		return nil, err
	}
	timings["snapshot"] = time.Since(t0)
	rollback := func(st snapshot.Stage, err error) (*CommitResult, error) {
		_ = snapshot.Discard(context.WithoutCancel(ctx), m.Store, res)
		return nil, &snapshot.Error{Stage: st, Slug: slug, Err: err}
	}
	committed := ""
	if !opts.NoLoad {
		t1 := time.Now()
		committed, err = rt.Load(ctx, Snapshot{Slug: slug, Store: m.Store, Manifest: res.Manifest,
			RawManifest: res.RawManifest, RawConfig: res.RawConfig, Prepared: prep})
		if err != nil {
			return rollback(snapshot.StageLoad, err)
		}
		timings["load"] = time.Since(t1)
	}
	keep := opts.Keep
	if keep == 0 {
		keep = DefaultKeep
	}
	// Tags first, pruning last: until the commit is recorded, a failure
	// gives the slug its previous snapshot back (Unpublish).
	if err := snapshot.Publish(ctx, m.Store, res, -1); err != nil {
		return rollback(snapshot.StageStore, err)
	}
	if opts.Prepare.Dir != "" {
		if err := rt.(SourceRecorder).RecordSource(slug, opts.Prepare.Dir); err != nil {
			return nil, &snapshot.Error{Stage: snapshot.StageRecord, Slug: slug, Err: err}
		}
	}
	if raw, err := m.Home.RawMetadata(slug); err == nil && raw != nil {
		if _, err := snapshot.PutMetadata(ctx, m.Store, slug, res.Manifest, raw); err != nil {
			m.log().Warn("storing bottle metadata with the snapshot", "slug", slug, "err", err)
		}
	}
	if committed != "" {
		if err := m.recordLoad(ctx, rt, slug, committed, res.Manifest.Digest.String()); err != nil {
			if uerr := snapshot.Unpublish(ctx, m.Store, res); uerr != nil {
				err = fmt.Errorf("%w (and restoring the previous snapshot failed: %v)", err, uerr)
			}
			return nil, &snapshot.Error{Stage: snapshot.StageRecord, Slug: slug, Err: err}
		}
	}
	if keep >= 0 {
		if err := snapshot.PruneFor(ctx, m.Store, res, keep); err != nil {
			m.log().Warn("pruning old snapshots", "slug", slug, "err", err)
		}
	}
	return &CommitResult{
		Slug: slug, Backend: backend, Committed: committed, Snapshot: res,
		Digest: res.Manifest.Digest.String(), Layer: res.Layer, Stats: res.Stats,
		Warnings: res.Warnings, Duration: time.Since(start), Timings: timings,
		Incremental: res.Incremental,
	}, nil
}

// prepare checks that the bottle runs and prepares its stream; a
// SelfInspecting runtime checks it in Prepare.
func (m *Manager) prepare(ctx context.Context, rt Runtime, slug, backend string, popts PrepareOptions) (*Info, *Prepared, error) {
	var info *Info
	_, self := rt.(SelfInspecting)
	switch {
	case popts.Dir != "":
		if _, ok := rt.(SourceRecorder); !ok {
			return nil, nil, fmt.Errorf("the %s backend does not snapshot a directory: --from-dir is for the dir backend", backend)
		}
		info = &Info{Slug: slug, Name: popts.Dir, Backend: backend, Running: true}
	case self:
	default:
		var err error
		if info, err = rt.Inspect(ctx, slug); err != nil {
			return nil, nil, err
		}
		if !info.Running {
			return nil, nil, notRunning(info, backend)
		}
	}
	prep, err := rt.Prepare(ctx, slug, popts)
	if err == nil && info == nil {
		if info = prep.Info; info == nil {
			err = fmt.Errorf("the %s backend did not say which bottle it prepared", backend)
		}
	}
	if err != nil {
		if prep != nil && prep.Release != nil {
			prep.Release()
		}
		if self && (errors.Is(err, ErrNotRunning) || errors.Is(err, ErrNoBottle)) {
			return nil, nil, err
		}
		return nil, nil, &snapshot.Error{Stage: snapshot.StageStream, Slug: slug, Err: err}
	}
	return info, prep, nil
}

func notRunning(info *Info, backend string) error {
	return fmt.Errorf("%s (%s): %w; start it first, bb commit snapshots running bottles", info.Name, backend, ErrNotRunning)
}

// previousConfig returns the config of slug's current snapshot, or nil.
func (m *Manager) previousConfig(ctx context.Context, slug string) *v1.ConfigFile {
	desc, err := m.Store.Resolve(ctx, snapshot.Tag(slug))
	if err != nil {
		return nil
	}
	img, err := m.Store.Image(ctx, desc.Digest)
	if err != nil {
		return nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil
	}
	return cf
}

// ResumeRequest is what Manager.Resume boots and how.
type ResumeRequest struct {
	// Backend overrides the bottle's backend (see Manager.Backend).
	Backend string
	// PrintOnly makes sure the runtime has the snapshot and returns its
	// reference without booting.
	PrintOnly bool
	// Resume is handed to the runtime's Boot.
	Resume ResumeOptions
}

// Resume boots a bottle from its snapshot, reinstalling it from the store
// when the runtime lost it, and loading the store's latest snapshot first
// when bb stored it without loading it (bb commit --no-load, an import or
// a pull without loading) and committed-image is still as bb left it. A
// commit another tool recorded in committed-image since is booted as it
// is, never overwritten. It returns the committed reference.
func (m *Manager) Resume(ctx context.Context, slug string, req ResumeRequest) (string, error) {
	if err := state.ValidSlug(slug); err != nil {
		return "", err
	}
	backend, err := m.Backend(slug, req.Backend)
	if err != nil {
		return "", err
	}
	rt, err := m.Runtime(backend)
	if err != nil {
		return "", err
	}
	if err := checkName(rt, slug); err != nil {
		return "", err
	}
	committed, err := m.Home.CommittedImage(slug)
	if err != nil {
		return "", err
	}
	snap := Snapshot{Slug: slug, Store: m.Store}
	desc, err := m.Store.Resolve(ctx, snapshot.Tag(slug))
	if err == nil {
		snap.Manifest = desc
	} else if !errors.Is(err, oci.ErrNotFound) {
		return "", err
	}
	load, err := m.needLoad(ctx, rt, slug, committed, snap.Manifest)
	if err != nil {
		return "", err
	}
	if load {
		committed, err = rt.Load(ctx, Snapshot{Slug: slug, Store: m.Store, Manifest: desc})
		if err != nil {
			return "", fmt.Errorf("loading snapshot of %s into %s: %w", slug, backend, err)
		}
		if err := m.recordLoad(ctx, rt, slug, committed, desc.Digest.String()); err != nil {
			return "", err
		}
	}
	if req.PrintOnly {
		return committed, nil
	}
	if err := rt.Boot(ctx, snap, committed, req.Resume); err != nil {
		return "", err
	}
	return committed, nil
}

// needLoad tells Resume whether to load latest, the store's snapshot of
// slug (zero when the store has none), into rt before booting: when rt
// lost committed, and when bb's record says that committed-image, as bb
// left it, names an older snapshot than latest.
func (m *Manager) needLoad(ctx context.Context, rt Runtime, slug, committed string, latest v1.Descriptor) (bool, error) {
	backend := rt.Name()
	has := false
	if committed != "" {
		var err error
		if has, err = rt.Has(ctx, committed); err != nil {
			return false, err
		}
	}
	stored := latest.Digest != (v1.Hash{})
	if !has {
		if !stored {
			if committed != "" {
				return false, fmt.Errorf("%s recorded %q for %s, but %s no longer has it and bb's store (%s) has no snapshot of it: commit the bottle again or import one", m.Home.StateDir(slug), committed, slug, backend, m.Store.Root())
			}
			return false, fmt.Errorf("no snapshot of %s: run bb commit %s first (store %s)", slug, slug, m.Store.Root())
		}
		m.log().Info("runtime lost the snapshot; loading it again from the store", "slug", slug, "backend", backend)
		return true, nil
	}
	if !stored {
		return false, nil
	}
	rec, current, err := m.Home.LoadedRecord(slug)
	switch {
	case err != nil:
		m.log().Warn("booting what committed-image names", "slug", slug, "err", err)
		return false, nil
	case rec == nil || rec.Digest == latest.Digest.String():
		// No record (an older bb's or the launcher's state): as before.
		return false, nil
	case !current || m.replaced(ctx, rt, slug, committed, rec):
		ci := filepath.Join(m.Home.StateDir(slug), state.CommittedImageFile)
		m.log().Warn("another tool committed the bottle after bb's last load: booting what committed-image names, not bb's latest snapshot in the store (to boot that one, delete "+ci+" and resume again)",
			"slug", slug, "committed", committed, "store", latest.Digest.String())
		return false, nil
	}
	m.log().Info("the store's latest snapshot of "+slug+" was not loaded yet (bb commit --no-load, import, pull): loading it",
		"slug", slug, "backend", backend, "digest", latest.Digest.String())
	return true, nil
}

// replaced reports whether rt says committed names another image than
// the one bb recorded with its last load: another tool committed under
// the same name (docker commit) without rewriting committed-image.
func (m *Manager) replaced(ctx context.Context, rt Runtime, slug, committed string, rec *state.Loaded) bool {
	id, ok := rt.(ImageIdentifier)
	if !ok || rec.Image == "" {
		return false
	}
	image, err := id.ImageID(ctx, committed)
	if err != nil {
		m.log().Warn("asking the runtime which image committed-image names", "slug", slug, "committed", committed, "err", err)
		return true
	}
	return image != rec.Image
}

// recordLoad writes committed-image and the preserve marker, then bb's
// record of what it loaded (digest, "" when nothing was loaded) and of
// the image rt says committed names. A failure of that record alone is a
// warning: the commit is recorded, and a stale record only makes the
// next resume boot what committed-image names, as if another tool had
// recorded it.
func (m *Manager) recordLoad(ctx context.Context, rt Runtime, slug, committed, digest string) error {
	image := ""
	if id, ok := rt.(ImageIdentifier); ok {
		var err error
		if image, err = id.ImageID(ctx, committed); err != nil {
			m.log().Warn("asking the runtime which image it loaded", "slug", slug, "committed", committed, "err", err)
		}
	}
	err := m.Home.RecordLoad(slug, committed, digest, image)
	if errors.Is(err, state.ErrLoadRecord) {
		m.log().Warn("bb resume will not load a snapshot stored without loading until bb loads one again", "slug", slug, "err", err)
		return nil
	}
	return err
}

// Row is one line of bb list: a bottle, its snapshot, or both.
type Row struct {
	Slug      string    `json:"slug"`
	Backend   string    `json:"backend"`
	Running   bool      `json:"running"`
	Committed string    `json:"committed,omitempty"`
	Tag       string    `json:"tag,omitempty"`
	Digest    string    `json:"digest,omitempty"`
	Size      int64     `json:"size,omitempty"`
	Created   time.Time `json:"created,omitempty"`
	History   int       `json:"history"`
}

// List returns every slug known to a runtime, the state directory or the
// store. Runtimes that cannot be reached are skipped with a warning.
func (m *Manager) List(ctx context.Context) ([]Row, error) {
	rows := map[string]*Row{}
	get := func(slug string) *Row {
		if r, ok := rows[slug]; ok {
			return r
		}
		r := &Row{Slug: slug}
		rows[slug] = r
		return r
	}
	names := make([]string, 0, len(m.Runtimes))
	for n := range m.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		bottles, err := m.Runtimes[n].List(ctx)
		if err != nil {
			m.log().Debug("listing bottles", "backend", n, "err", err)
			continue
		}
		for _, b := range bottles {
			r := get(b.Slug)
			r.Backend, r.Running = b.Backend, b.Running
		}
	}
	slugs, err := m.Home.Slugs()
	if err != nil {
		return nil, err
	}
	for _, s := range slugs {
		c, err := m.Home.CommittedImage(s)
		if err != nil || c == "" {
			continue
		}
		r := get(s)
		r.Committed = c
		if r.Backend == "" {
			r.Backend, _ = m.Backend(s, "")
		}
	}
	entries, err := snapshot.List(ctx, m.Store, "")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		r := get(e.Slug)
		r.History++
		if e.Current {
			r.Tag, r.Digest, r.Created = e.Tag, e.Manifest.Digest.String(), e.Created
			if r.Backend == "" {
				r.Backend = e.Backend
			}
			if sz, err := ImageSize(ctx, m.Store, e.Manifest); err == nil {
				r.Size = sz
			}
		}
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out, nil
}
