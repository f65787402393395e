package bottle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
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
		return CommittedRef(slug)
	}
}

// AdoptOptions tune Adopt.
type AdoptOptions struct {
	// Metadata is the bottle's metadata.json as it travelled; nil if none.
	Metadata []byte
	// Backend overrides the backend named in Metadata.
	Backend string
	// Load loads the snapshot into the runtime now.
	Load bool
	// Force replaces a different current snapshot of the slug.
	Force bool
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
	committed := DefaultCommitted(m.Home, backend, slug)
	if opts.Load {
		rt, err := m.Runtime(backend)
		if err != nil {
			return "", err
		}
		if committed, err = rt.Load(ctx, Snapshot{Slug: slug, Store: m.Store, Manifest: d}); err != nil {
			return "", fmt.Errorf("loading %s into %s: %w (the snapshot is in the store; bb resume %s retries)", slug, backend, err, slug)
		}
	}
	if committed == "" {
		return "", m.Home.MarkPreserved(slug)
	}
	return committed, m.Home.RecordCommit(slug, committed)
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

// SlugFree refuses, unless force, to make an arriving snapshot (digest)
// the current one of slug when slug already has a different snapshot, or
// a bottle on this host that bb has no snapshot of. verb names what the
// user is doing ("import", "pull") in the advice.
func (m *Manager) SlugFree(ctx context.Context, slug string, digest v1.Hash, force bool, verb string) error {
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
