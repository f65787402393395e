package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The content-management API (Options.AllowDelete), mapped onto the store
// as bb rm and bb gc act on it:
//
//	DELETE /v2/<repo>/manifests/<tag>     untags the store tag (bb rm SLUG-T)
//	DELETE /v2/<repo>/manifests/<digest>  removes the repository's tags of
//	                                      the manifest and, when nothing
//	                                      else in the store uses it, the
//	                                      manifest itself
//	DELETE /v2/<repo>/blobs/<digest>      removes the blob at once, unless
//	                                      a manifest in the store uses it
//
// What a snapshot, an index or another repository still needs is refused
// with 409 DENIED, naming who needs it.

// deleteManifest answers DELETE of a manifest, by tag or by digest.
func (h *handler) deleteManifest(ctx context.Context, w http.ResponseWriter, rt route) *regError {
	if !strings.Contains(rt.ref, ":") {
		return h.deleteTag(ctx, w, rt)
	}
	d, e := parseDigest(rt.ref)
	if e != nil {
		return e
	}
	if _, err := h.store.Stat(ctx, d); errors.Is(err, oci.ErrNotFound) {
		return manifestUnknown(rt.repo, rt.ref)
	} else if err != nil {
		return internal("reading manifest", err)
	}
	// Only a manifest can be deleted here: a layer asked for as a manifest
	// is unknown, as a GET would say.
	if info, _, err := h.info(ctx, d); errors.Is(err, oci.ErrNotFound) || errors.Is(err, errNotManifest) || (err == nil && info == nil) {
		return manifestUnknown(rt.repo, rt.ref)
	} else if err != nil {
		return internal("reading manifest", err)
	}
	// Drop this repository's tags of d and the untagged entries of d (a
	// referrer pushed by digest); other repositories' tags stay.
	edit := func(idx *v1.IndexManifest) error {
		v := newView(idx)
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			t := m.Annotations[oci.RefNameAnnotation]
			if m.Digest == d && (t == "" || v.owner[t] == rt.slug) {
				continue
			}
			kept = append(kept, m)
		}
		idx.Manifests = dropOrphanMetadata(kept)
		return nil
	}
	_, err := h.store.Delete(ctx, edit, []v1.Hash{d})
	var inUse *oci.InUseError
	if errors.As(err, &inUse) {
		// Still tagged elsewhere: drop this repository's tags only. Reached
		// from another manifest (a child of an index): refuse.
		direct, e := h.directUsers(ctx, d, inUse.By)
		if e != nil {
			return e
		}
		if !direct {
			return inUseError("manifest", inUse)
		}
		_, err = h.store.Delete(ctx, edit, nil)
	}
	if err != nil {
		return internal("deleting manifest", err)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// directUsers reports whether every index.json entry named in by is a tag
// of d itself (rather than a manifest that references d).
func (h *handler) directUsers(ctx context.Context, d v1.Hash, by []string) (bool, *regError) {
	idx, err := h.store.Index(ctx)
	if err != nil {
		return false, internal("reading the store's index", err)
	}
	direct := map[string]bool{}
	for _, m := range idx.Manifests {
		if t := m.Annotations[oci.RefNameAnnotation]; t != "" && m.Digest == d {
			direct[t] = true
		}
	}
	for _, name := range by {
		if !direct[name] {
			return false, nil
		}
	}
	return true, nil
}

// deleteTag answers DELETE of a tag: its store tag goes, as with bb rm of
// that tag; blobs stay for bb gc.
func (h *handler) deleteTag(ctx context.Context, w http.ResponseWriter, rt route) *regError {
	if oci.ValidTag(rt.ref) != nil {
		return manifestUnknown(rt.repo, rt.ref)
	}
	st := storeTag(rt.slug, rt.ref)
	found := false
	err := h.store.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		v := newView(idx)
		if _, ok := v.repos[rt.slug][rt.ref]; !ok {
			return nil
		}
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.Annotations[oci.RefNameAnnotation] == st {
				found = true
				continue
			}
			kept = append(kept, m)
		}
		idx.Manifests = dropOrphanMetadata(kept)
		return nil
	})
	if err != nil {
		return internal("deleting tag", err)
	}
	if !found {
		return manifestUnknown(rt.repo, rt.ref)
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// deleteBlob answers DELETE of a blob: it leaves the store at once unless
// a manifest in the store references it.
func (h *handler) deleteBlob(ctx context.Context, w http.ResponseWriter, ref string) *regError {
	d, e := parseDigest(ref)
	if e != nil {
		return e
	}
	removed, err := h.store.Delete(ctx, nil, []v1.Hash{d})
	var inUse *oci.InUseError
	if errors.As(err, &inUse) {
		return inUseError("blob", inUse)
	}
	if err != nil {
		return internal("deleting blob", err)
	}
	if len(removed) == 0 {
		e := newError(404, codeBlobUnknown, "blob "+d.String()+" is not in this registry")
		e.Detail = map[string]string{"digest": d.String()}
		return e
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

// dropOrphanMetadata removes from entries the bottle metadata artifacts
// (and the converted copies, see snapshot.Convert, and the file indexes)
// whose snapshot no tag holds any more: they go with the last snapshot
// they describe, as when bb prunes a slug's history.
func dropOrphanMetadata(entries []v1.Descriptor) []v1.Descriptor {
	tagged := map[string]bool{}
	for _, m := range entries {
		if m.Annotations[oci.RefNameAnnotation] != "" {
			tagged[m.Digest.String()] = true
		}
	}
	kept := entries[:0]
	for _, m := range entries {
		if (m.ArtifactType == snapshot.MetadataArtifactType || m.ArtifactType == snapshot.ConvertedArtifactType || m.ArtifactType == snapshot.IndexArtifactType) && !tagged[m.Annotations[oci.SubjectAnnotation]] {
			continue
		}
		kept = append(kept, m)
	}
	return kept
}

// inUseError refuses to delete what the store still needs.
func inUseError(what string, err *oci.InUseError) *regError {
	e := newError(http.StatusConflict, codeDenied, fmt.Sprintf("%s not deleted: %v (store tags; see bb list)", what, err))
	e.Detail = map[string]any{"digest": err.Digest.String(), "usedBy": err.By}
	return e
}
