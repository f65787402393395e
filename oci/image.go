package oci

import (
	"context"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image returns the image whose manifest is the blob h, whether or not
// index.json names it (a snapshot being committed is loaded into its
// runtime before it is tagged). Layers stream from the store's files.
func (s *Store) Image(ctx context.Context, h v1.Hash) (v1.Image, error) {
	m, raw, err := s.manifest(ctx, v1.Descriptor{Digest: h})
	if err != nil {
		return nil, err
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	return partial.CompressedToImage(&blobImage{ctx: ctx, s: s, raw: raw, m: m, mt: mt})
}

// blobImage is a partial.CompressedImageCore over store blobs.
type blobImage struct {
	ctx context.Context
	s   *Store
	raw []byte
	m   *v1.Manifest
	mt  types.MediaType
}

func (i *blobImage) RawConfigFile() ([]byte, error) {
	return i.s.ReadBlob(i.ctx, i.m.Config.Digest, MaxConfigSize)
}

func (i *blobImage) MediaType() (types.MediaType, error) { return i.mt, nil }

func (i *blobImage) RawManifest() ([]byte, error) { return i.raw, nil }

func (i *blobImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.m.Config.Digest {
		return &blobLayer{i: i, d: i.m.Config}, nil
	}
	for _, l := range i.m.Layers {
		if l.Digest == h {
			return &blobLayer{i: i, d: l}, nil
		}
	}
	return nil, fmt.Errorf("layer %s is not in manifest: %w", h, ErrNotFound)
}

type blobLayer struct {
	i *blobImage
	d v1.Descriptor
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *blobLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error)  { return l.i.s.Blob(l.i.ctx, l.d.Digest) }
