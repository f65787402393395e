package bottle

import (
	"context"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Remove deletes snapshots from the store: with a slug, all of its
// snapshots and their metadata; with a history tag (<slug>-<time>), that
// one snapshot (refused if it is the slug's current one). Blobs no other
// snapshot uses are then removed. It returns the tags removed.
func (m *Manager) Remove(ctx context.Context, ref string) ([]string, error) {
	idx, err := m.Store.Index(ctx)
	if err != nil {
		return nil, err
	}
	var target *v1.Descriptor
	slugWide := false
	for i, d := range idx.Manifests {
		if d.Annotations[oci.RefNameAnnotation] == ref {
			target = &idx.Manifests[i]
			slugWide = d.Annotations[oci.SlugAnnotation] == ref
			break
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%q: %w (see bb list and bb inspect SLUG for tags)", ref, oci.ErrNotFound)
	}
	slug := target.Annotations[oci.SlugAnnotation]
	if !slugWide && slug != "" {
		if cur, err := m.Store.Resolve(ctx, snapshot.Tag(slug)); err == nil && cur.Digest == target.Digest {
			return nil, fmt.Errorf("%s is the current snapshot of %s: remove the slug (bb rm %s) or commit again first", ref, slug, slug)
		}
	}
	var removed []string
	err = m.Store.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		removed = removed[:0]
		gone := map[string]bool{}
		kept := idx.Manifests[:0]
		for _, d := range idx.Manifests {
			name := d.Annotations[oci.RefNameAnnotation]
			drop := name == ref
			if slugWide && d.Annotations[oci.SlugAnnotation] == slug && (name == "" || snapshot.IsSnapshotTag(slug, name)) {
				drop = true
			}
			if drop {
				if name != "" {
					removed = append(removed, name)
					gone[d.Digest.String()] = true
				}
				continue
			}
			kept = append(kept, d)
		}
		idx.Manifests = dropOrphans(kept, gone)
		return nil
	})
	if err != nil {
		return nil, err
	}
	_, err = m.Store.GC(ctx)
	return removed, err
}

// isArtifact reports whether d is an artifact bb attaches to a snapshot
// (its subject annotation names the snapshot).
func isArtifact(d v1.Descriptor) bool {
	return d.ArtifactType == snapshot.MetadataArtifactType || d.ArtifactType == snapshot.IndexArtifactType || d.ArtifactType == snapshot.ConvertedArtifactType
}

// dropOrphans drops from entries the (untagged) artifacts whose subject
// is one of gone (the snapshots a removal untagged) and that no entry
// names any more. An artifact whose subject is still named stays: the same
// snapshot may be named under another slug (bb import --as, bb pull
// --as), and the slug annotation of a converted copy is the one the
// snapshot was committed as, not the one it is named under.
func dropOrphans(entries []v1.Descriptor, gone map[string]bool) []v1.Descriptor {
	named := map[string]bool{}
	for _, d := range entries {
		if d.Annotations[oci.RefNameAnnotation] != "" {
			named[d.Digest.String()] = true
		}
	}
	kept := entries[:0]
	for _, d := range entries {
		if sub := d.Annotations[oci.SubjectAnnotation]; isArtifact(d) && d.Annotations[oci.RefNameAnnotation] == "" && gone[sub] && !named[sub] {
			continue
		}
		kept = append(kept, d)
	}
	return kept
}
