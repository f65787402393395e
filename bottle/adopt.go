package bottle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SmolmachineArtifact is where a smolmachines snapshot's packed artifact
// lives: <home>/state/<slug>/committed-smolmachine.smolmachine.
func SmolmachineArtifact(home state.Home, slug string) string {
	return filepath.Join(home.StateDir(slug), "committed-smolmachine.smolmachine")
}

// DefaultCommitted is what committed-image names for a snapshot of slug
// on backend before the runtime has it: the image reference for docker and
// macos-container, the artifact path for smolmachines.
func DefaultCommitted(home state.Home, backend, slug string) string {
	switch backend {
	case Smolmachines:
		return SmolmachineArtifact(home, slug)
	case Dir:
		return ""
	default:
		return state.CommittedRef(slug)
	}
}

// AdoptOptions tune Adopt, AdoptSlugs and AdoptAll.
type AdoptOptions struct {
	// Metadata is the bottle's metadata.json as it travelled; nil if none
	// (Adopt; AdoptAll takes each Arrival's).
	Metadata []byte
	// Backend overrides the backend named in Metadata.
	Backend string
	// Load loads the snapshot into the runtime now.
	Load bool
	// Force replaces a different current snapshot of the slug.
	Force bool
	// As is the slug to adopt the one arriving snapshot under (--as);
	// empty keeps the slug each records (AdoptSlugs).
	As string
	// Verb names what the user is doing ("import", "pull") in advice.
	Verb string
	// Added are the blobs the arrival added to the store: AdoptAll
	// removes those that nothing tags again when it fails.
	Added []v1.Hash
}

// Arrival is a snapshot that came into the store from another host (bb
// import reads it from an archive, bb pull from a registry), to become
// the current snapshot of a slug here. Both go the same way:
// AdoptSlugs picks and checks the slugs (pull does so from the manifest
// alone, before any blob is fetched), AdoptAll adopts each (Adopt).
type Arrival struct {
	// Manifest is the image manifest's descriptor in the store.
	Manifest v1.Descriptor
	// Slug is the slug the snapshot records, or "".
	Slug string
	// Fallback is the slug taken when the snapshot records no valid one
	// (pull: the repository's last path element); "" refuses such a
	// snapshot.
	Fallback string
	// Name is the reference it came under, for messages; "" if none.
	Name string
	// Metadata is the bottle's metadata.json as it travelled; nil if none.
	Metadata []byte
}

// what names an arrival in messages.
func (a Arrival) what() string {
	if a.Name != "" {
		return a.Name + " (" + a.Manifest.Digest.String() + ")"
	}
	return a.Manifest.Digest.String()
}

// AdoptSlugs picks the slug each arrival is adopted under (opts.As, which
// names the one arrival; else the slug it records; else its Fallback) and
// refuses, unless opts.Force, a slug that already has another snapshot
// or a bottle on this host. It changes nothing.
func (m *Manager) AdoptSlugs(ctx context.Context, arrivals []Arrival, opts AdoptOptions) ([]string, error) {
	verb := opts.Verb
	if verb == "" {
		verb = "import"
	}
	if opts.As != "" && len(arrivals) != 1 {
		whats := make([]string, len(arrivals))
		for i, a := range arrivals {
			whats[i] = a.what()
		}
		return nil, fmt.Errorf("%d images arrived; --as names one: %s", len(arrivals), strings.Join(whats, ", "))
	}
	slugs := make([]string, len(arrivals))
	seen := map[string]bool{}
	for i, a := range arrivals {
		slug, err := pickSlug(a, opts.As, verb)
		if err != nil {
			return nil, err
		}
		if seen[slug] {
			return nil, fmt.Errorf("two of the snapshots are of %s: %s one of them with --as", slug, verb)
		}
		seen[slug] = true
		slugs[i] = slug
	}
	for i, a := range arrivals {
		if err := m.slugFree(ctx, slugs[i], a.Manifest.Digest, opts.Force, verb); err != nil {
			return nil, err
		}
	}
	return slugs, nil
}

// pickSlug is the slug an arrival goes under.
func pickSlug(a Arrival, as, verb string) (string, error) {
	if as != "" {
		if err := state.ValidSlug(as); err != nil {
			return "", fmt.Errorf("--as: %w", err)
		}
		return as, nil
	}
	err := state.ValidSlug(a.Slug)
	switch {
	case err == nil:
		return a.Slug, nil
	case a.Fallback != "":
		if err := state.ValidSlug(a.Fallback); err != nil {
			return "", fmt.Errorf("%s has no usable slug (%v): pass --as NAME", a.what(), err)
		}
		return a.Fallback, nil
	case a.Slug == "":
		return "", fmt.Errorf("image %s is not a bottle snapshot (no %s annotation): %s it with --as SLUG", a.what(), oci.SlugAnnotation, verb)
	}
	return "", fmt.Errorf("image %s: %w: %s it with --as SLUG", a.what(), err, verb)
}

// AdoptAll makes each arrival the current snapshot of its slug (slugs,
// from AdoptSlugs) with Adopt, and returns what committed-image names
// for each. When one fails, the blobs of opts.Added that nothing tags
// are removed again; those adopted before it stay.
func (m *Manager) AdoptAll(ctx context.Context, arrivals []Arrival, slugs []string, opts AdoptOptions) ([]string, error) {
	if len(slugs) != len(arrivals) {
		return nil, fmt.Errorf("adopting %d snapshots under %d slugs: pick them with AdoptSlugs", len(arrivals), len(slugs))
	}
	committed := make([]string, len(arrivals))
	for i, a := range arrivals {
		o := opts
		o.Metadata = a.Metadata
		c, err := m.Adopt(ctx, slugs[i], a.Manifest, o)
		if err != nil {
			err = fmt.Errorf("%s %s as %s: %w", verbing(opts.Verb), a.Manifest.Digest, slugs[i], err)
			if derr := m.Store.Discard(context.WithoutCancel(ctx), opts.Added); derr != nil {
				err = fmt.Errorf("%w (and removing the blobs that arrived failed: %v)", err, derr)
			}
			return nil, err
		}
		committed[i] = c
	}
	return committed, nil
}

func verbing(verb string) string {
	switch verb {
	case "", "import":
		return "importing"
	case "pull":
		return "pulling"
	}
	return verb
}

// Adopt makes desc, an image that arrived in the store (import, pull),
// the current snapshot of slug on this host: it tags it, restores
// metadata.json (identity set to slug; cwd and copy_cwd, which name
// paths of the host it came from, dropped; the bytes as they came kept
// in metadata.imported.json) and writes committed-image and the
// preserve marker, so that bb resume works here. Nothing it restores
// names what a later commit reads: a dir bottle's directory is only ever
// one this host's user named. It returns what
// committed-image names.
func (m *Manager) Adopt(ctx context.Context, slug string, desc v1.Descriptor, opts AdoptOptions) (string, error) {
	if err := state.ValidSlug(slug); err != nil {
		return "", err
	}
	if cur, err := m.Store.Resolve(ctx, snapshot.Tag(slug)); err == nil && cur.Digest != desc.Digest && !opts.Force {
		return "", fmt.Errorf("slug %s already has a snapshot (%s) on this host: choose another slug with --as, or pass --force to replace it", slug, cur.Digest)
	} else if err != nil && !errors.Is(err, oci.ErrNotFound) {
		return "", err
	}
	if md, err := m.Home.ReadMetadata(slug); err != nil {
		return "", err
	} else if md != nil && !opts.Force && md.Backend != "" && opts.Backend != "" && md.Backend != opts.Backend {
		return "", fmt.Errorf("slug %s is a %s bottle on this host: choose another slug with --as", slug, md.Backend)
	}
	backend := opts.Backend
	if backend == "" && opts.Metadata != nil {
		var md state.Metadata
		if err := json.Unmarshal(opts.Metadata, &md); err != nil {
			return "", fmt.Errorf("bottle metadata is not valid JSON: %w", err)
		}
		backend = md.Backend
	}
	if backend == "" {
		backend = manifestBackend(ctx, m.Store, desc)
	}
	if backend == "" {
		var err error
		if backend, err = m.Backend(slug, ""); err != nil {
			return "", err
		}
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	d := desc
	d.Annotations = map[string]string{
		oci.SlugAnnotation:    slug,
		oci.BackendAnnotation: backend,
		oci.CreatedAnnotation: now.Format(time.RFC3339Nano),
	}
	res := &snapshot.Result{Slug: slug, Tag: snapshot.Tag(slug), TimeTag: snapshot.TimeTag(slug, now), Manifest: d}
	if err := snapshot.Publish(ctx, m.Store, res, -1); err != nil {
		return "", err
	}
	undo := func(err error) (string, error) {
		if uerr := snapshot.Unpublish(ctx, m.Store, res); uerr != nil {
			err = fmt.Errorf("%w (and restoring the previous snapshot of %s failed: %v)", err, slug, uerr)
		}
		return "", err
	}
	if opts.Metadata != nil {
		// Data to carry, not configuration: host paths are dropped.
		if err := m.Home.WriteImportedMetadata(slug, opts.Metadata); err != nil {
			return undo(err)
		}
	}
	// metadata.json names the backend the snapshot was adopted for, so
	// that resume picks the same runtime (the snapshot may have come
	// without metadata, or with none that names it).
	if err := m.Home.SetBackend(slug, backend); err != nil {
		return undo(err)
	}
	if raw, _ := m.Home.RawMetadata(slug); raw != nil {
		if _, err := snapshot.PutMetadata(ctx, m.Store, slug, d, raw); err != nil {
			return undo(err)
		}
	}
	if err := snapshot.PruneFor(ctx, m.Store, res, DefaultKeep); err != nil {
		m.log().Warn("pruning old snapshots", "slug", slug, "err", err)
	}
	committed, loaded := DefaultCommitted(m.Home, backend, slug), ""
	var rt Runtime // asked which image it loaded; nil without a load
	if opts.Load {
		var err error
		if rt, err = m.Runtime(backend); err != nil {
			return "", err
		}
		if committed, err = rt.Load(ctx, Snapshot{Slug: slug, Store: m.Store, Manifest: d}); err != nil {
			return "", fmt.Errorf("loading %s into %s: %w (the snapshot is in the store; bb resume %s retries)", slug, backend, err, slug)
		}
		loaded = d.Digest.String()
	}
	if committed == "" {
		return "", m.Home.MarkPreserved(slug)
	}
	// Without a load, the record names no snapshot: bb resume loads the
	// adopted one even if the runtime has an older image under the name.
	return committed, m.recordLoad(ctx, rt, slug, committed, loaded)
}

// manifestBackend is the backend a snapshot's manifest names in its
// annotations ("" when it names none): the fallback for a snapshot that
// travelled without metadata.json. Like the metadata, it only picks which
// runtime resumes the bottle; a dir bottle's directory still comes only
// from this host's user.
func manifestBackend(ctx context.Context, s *oci.Store, desc v1.Descriptor) string {
	man, err := s.Manifest(ctx, desc)
	if err != nil {
		return ""
	}
	switch be := man.Annotations[oci.BackendAnnotation]; be {
	case Docker, MacosContainer, Smolmachines, Dir:
		return be
	}
	return ""
}

// slugFree refuses, unless force, to make an arriving snapshot (digest)
// the current one of slug when slug already has a different snapshot, or
// a bottle on this host that bb has no snapshot of. verb names what the
// user is doing ("import", "pull") in the advice.
func (m *Manager) slugFree(ctx context.Context, slug string, digest v1.Hash, force bool, verb string) error {
	if force {
		return nil
	}
	cur, err := m.Store.Resolve(ctx, snapshot.Tag(slug))
	switch {
	case err == nil && cur.Digest != digest:
		return fmt.Errorf("slug %s already has a snapshot (%s) on this host: %s under another slug with --as NEW, or pass --force to replace it", slug, cur.Digest, verb)
	case err == nil:
		return nil // the same snapshot again
	case !errors.Is(err, oci.ErrNotFound):
		return err
	}
	md, err := m.Home.ReadMetadata(slug)
	if err != nil {
		return err
	}
	committed, err := m.Home.CommittedImage(slug)
	if err != nil {
		return err
	}
	if md != nil || committed != "" {
		return fmt.Errorf("a bottle %s already exists on this host (%s): %s under another slug with --as NEW, or pass --force to replace its state", slug, m.Home.StateDir(slug), verb)
	}
	return nil
}
