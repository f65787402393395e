package oci

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Complete checks that every blob desc reaches (its manifest, config and
// layers, or an index's manifests) is in the store with its declared
// size. Called inside UpdateIndex, it holds until the update is written:
// GC and rollbacks take the same lock.
func (s *Store) Complete(ctx context.Context, desc v1.Descriptor) error {
	return s.complete(ctx, desc, 0)
}

func (s *Store) complete(ctx context.Context, desc v1.Descriptor, depth int) error {
	if depth > 4 {
		return fmt.Errorf("%s: indexes nested too deeply", desc.Digest)
	}
	n, err := s.Stat(ctx, desc.Digest)
	if err != nil {
		return err
	}
	if desc.Size > 0 && n != desc.Size {
		return fmt.Errorf("blob %s has %d bytes in the store, its descriptor says %d", desc.Digest, n, desc.Size)
	}
	switch desc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		m, err := s.Manifest(ctx, desc)
		if err != nil {
			return err
		}
		for _, d := range append([]v1.Descriptor{m.Config}, m.Layers...) {
			if d.Data != nil && d.Size == int64(len(d.Data)) {
				continue // embedded (the OCI empty config)
			}
			n, err := s.Stat(ctx, d.Digest)
			if err != nil {
				return fmt.Errorf("manifest %s: %w", desc.Digest, err)
			}
			if n != d.Size {
				return fmt.Errorf("manifest %s: blob %s has %d bytes in the store, the manifest says %d", desc.Digest, d.Digest, n, d.Size)
			}
		}
	case types.OCIImageIndex, types.DockerManifestList:
		im, err := s.indexManifest(ctx, desc.Digest)
		if err != nil {
			return err
		}
		for _, c := range im.Manifests {
			if err := s.complete(ctx, c, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
