package oci

import (
	"bytes"
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Manifest reads the image manifest desc names from the store (at most
// MaxManifestSize bytes), checks it against desc's size and digest and
// parses it. An image index is refused: it is not an image manifest.
func (s *Store) Manifest(ctx context.Context, desc v1.Descriptor) (*v1.Manifest, error) {
	m, _, err := s.manifest(ctx, desc)
	return m, err
}

// manifest is Manifest that also returns the manifest's bytes.
func (s *Store) manifest(ctx context.Context, desc v1.Descriptor) (*v1.Manifest, []byte, error) {
	b, err := s.ReadBlob(ctx, desc.Digest, MaxManifestSize)
	if err != nil {
		return nil, nil, err
	}
	if desc.Size > 0 && int64(len(b)) != desc.Size {
		return nil, nil, fmt.Errorf("manifest %s has %d bytes in the store, its descriptor says %d", desc.Digest, len(b), desc.Size)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("parsing manifest %s: %w", desc.Digest, err)
	}
	if m.MediaType.IsIndex() {
		return nil, nil, fmt.Errorf("%s is an image index (%s), not an image manifest", desc.Digest, m.MediaType)
	}
	return m, b, nil
}

// Config reads the image config blob h from the store (at most
// MaxConfigSize bytes) and parses it.
func (s *Store) Config(ctx context.Context, h v1.Hash) (*v1.ConfigFile, error) {
	b, err := s.ReadBlob(ctx, h, MaxConfigSize)
	if err != nil {
		return nil, err
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing config %s: %w", h, err)
	}
	return cf, nil
}

// indexManifest reads and parses the image index blob h.
func (s *Store) indexManifest(ctx context.Context, h v1.Hash) (*v1.IndexManifest, error) {
	b, err := s.ReadBlob(ctx, h, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", h, err)
	}
	return im, nil
}
