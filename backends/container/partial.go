package container

import (
	"context"
	"strings"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// heldLayers returns the layers of img that container's image store
// holds: those of the manifests container has under the snapshot's name
// (ds, the digests container image inspect lists), read from bb's store
// (a manifest bb does not have tells nothing). container keeps every
// blob an image references (containerization 0.40.1
// ImageStore.swift:154-161 collects only unreferenced blobs), and its
// image load takes a blob its store holds from the store without
// reading the archive (ImageStore+Import.swift:144-154, the import
// container image load runs: ImageStore+OCILayout.swift:74-109), so an
// archive may leave these layers out.
func heldLayers(ctx context.Context, s *oci.Store, img v1.Image, ds []string) map[v1.Hash]bool {
	m, err := img.Manifest()
	if err != nil {
		return nil
	}
	wanted := map[v1.Hash]bool{}
	for _, l := range m.Layers {
		wanted[l.Digest] = true
	}
	held := map[v1.Hash]bool{}
	for _, d := range ds {
		h, err := v1.NewHash(d)
		if err != nil {
			continue
		}
		old, err := s.Manifest(ctx, v1.Descriptor{Digest: h})
		if err != nil {
			continue
		}
		for _, l := range old.Layers {
			if wanted[l.Digest] {
				held[l.Digest] = true
			}
		}
	}
	return held
}

// withoutLayers is img with the layers in held left out of Layers, for
// WriteArchive only: the archive then holds the manifest, the config and
// the other layers. Its manifest still lists every layer.
type withoutLayers struct {
	v1.Image
	held map[v1.Hash]bool
}

// Layers implements v1.Image.
func (w *withoutLayers) Layers() ([]v1.Layer, error) {
	ls, err := w.Image.Layers()
	if err != nil {
		return nil, err
	}
	out := ls[:0:0]
	for _, l := range ls {
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		if !w.held[d] {
			out = append(out, l)
		}
	}
	return out, nil
}

// lostBlob reports whether a load that left the held layers out failed
// for want of one of them: the import found it neither in container's
// store nor in the archive (LocalOCILayoutClient.Error.missingContent,
// containerization 0.40.1 LocalOCILayoutClient.swift:31-35, reported as
// missingContent("sha256:...")), which a load of the whole snapshot
// does not hit.
func lostBlob(err error, held map[v1.Hash]bool) bool {
	msg := err.Error()
	if strings.Contains(msg, "missingContent") {
		return true
	}
	for h := range held {
		if strings.Contains(msg, h.Hex) {
			return true
		}
	}
	return false
}
