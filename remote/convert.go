package remote

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Conversions between go-containerregistry's descriptors (what the store
// speaks) and image-spec's (what oras-go speaks). Every field the OCI
// descriptor defines is kept; v1.Platform's Features (not part of the
// image spec) has no image-spec counterpart and is dropped.

func toOCI(d v1.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{
		MediaType:    string(d.MediaType),
		Digest:       digest.Digest(d.Digest.String()),
		Size:         d.Size,
		URLs:         d.URLs,
		Annotations:  d.Annotations,
		Data:         d.Data,
		Platform:     platformToOCI(d.Platform),
		ArtifactType: d.ArtifactType,
	}
}

func fromOCI(d ocispec.Descriptor) (v1.Descriptor, error) {
	h, err := v1.NewHash(d.Digest.String())
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{
		MediaType:    types.MediaType(d.MediaType),
		Digest:       h,
		Size:         d.Size,
		URLs:         d.URLs,
		Annotations:  d.Annotations,
		Data:         d.Data,
		Platform:     platformFromOCI(d.Platform),
		ArtifactType: d.ArtifactType,
	}, nil
}

func platformToOCI(p *v1.Platform) *ocispec.Platform {
	if p == nil {
		return nil
	}
	return &ocispec.Platform{
		Architecture: p.Architecture,
		OS:           p.OS,
		OSVersion:    p.OSVersion,
		OSFeatures:   p.OSFeatures,
		Variant:      p.Variant,
	}
}

func platformFromOCI(p *ocispec.Platform) *v1.Platform {
	if p == nil {
		return nil
	}
	return &v1.Platform{
		Architecture: p.Architecture,
		OS:           p.OS,
		OSVersion:    p.OSVersion,
		OSFeatures:   p.OSFeatures,
		Variant:      p.Variant,
	}
}
