package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The bottle's metadata.json travels with a snapshot as an OCI artifact
// whose subject is the snapshot's manifest: a referrer in a registry, an
// extra index.json entry in an export archive and in the local store.
const (
	// MetadataArtifactType is the artifactType of the metadata manifest.
	MetadataArtifactType = "application/vnd.bot-bottle.metadata.v1+json"
	// MetadataMediaType is the media type of its one layer (metadata.json).
	MetadataMediaType types.MediaType = "application/vnd.bot-bottle.metadata.v1+json"
	// EmptyMediaType is the OCI empty config descriptor's media type.
	EmptyMediaType types.MediaType = "application/vnd.oci.empty.v1+json"
	// MaxMetadataSize bounds what bb reads of metadata.json.
	MaxMetadataSize = 1 << 20
)

// emptyJSON is the OCI empty descriptor's content, "{}".
var emptyJSON = []byte("{}")

// MetadataManifest builds the artifact manifest carrying raw (the bytes of
// metadata.json) for subject. It returns the manifest bytes and the blobs
// it needs (the empty config and raw), keyed by digest.
func MetadataManifest(subject v1.Descriptor, raw []byte) ([]byte, map[v1.Hash][]byte, error) {
	if len(raw) > MaxMetadataSize {
		return nil, nil, fmt.Errorf("bottle metadata is larger than %d bytes", MaxMetadataSize)
	}
	eh, _, _ := v1.SHA256(bytes.NewReader(emptyJSON))
	mh, _, _ := v1.SHA256(bytes.NewReader(raw))
	sub := v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := struct {
		SchemaVersion int64             `json:"schemaVersion"`
		MediaType     types.MediaType   `json:"mediaType"`
		ArtifactType  string            `json:"artifactType"`
		Config        v1.Descriptor     `json:"config"`
		Layers        []v1.Descriptor   `json:"layers"`
		Subject       *v1.Descriptor    `json:"subject"`
		Annotations   map[string]string `json:"annotations,omitempty"`
	}{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  MetadataArtifactType,
		Config:        v1.Descriptor{MediaType: EmptyMediaType, Digest: eh, Size: int64(len(emptyJSON)), Data: emptyJSON},
		Layers: []v1.Descriptor{{
			MediaType:   MetadataMediaType,
			Digest:      mh,
			Size:        int64(len(raw)),
			Annotations: map[string]string{"org.opencontainers.image.title": "metadata.json"},
		}},
		Subject: &sub,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, nil, err
	}
	return b, map[v1.Hash][]byte{eh: emptyJSON, mh: raw}, nil
}

// PutMetadata stores raw as the metadata artifact of subject and records
// it in index.json (untagged, with the subject's slug annotation), replacing
// an earlier metadata artifact of the same subject.
func PutMetadata(ctx context.Context, s *oci.Store, slug string, subject v1.Descriptor, raw []byte) (v1.Descriptor, error) {
	mb, blobs, err := MetadataManifest(subject, raw)
	if err != nil {
		return v1.Descriptor{}, err
	}
	for h, b := range blobs {
		if _, _, err := s.Ingest(ctx, bytes.NewReader(b), h, int64(len(b))); err != nil {
			return v1.Descriptor{}, err
		}
	}
	d, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d.ArtifactType = MetadataArtifactType
	d.Annotations = map[string]string{oci.SlugAnnotation: slug, oci.SubjectAnnotation: subject.Digest.String()}
	err = s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.ArtifactType == MetadataArtifactType && m.Annotations[oci.SubjectAnnotation] == subject.Digest.String() && m.Annotations[oci.SlugAnnotation] == slug {
				continue
			}
			kept = append(kept, m)
		}
		idx.Manifests = append(kept, d)
		return nil
	})
	return d, err
}

// GetMetadata returns the metadata.json bytes stored for subject, or
// oci.ErrNotFound. Several slugs can share one snapshot (an import under
// another name); the artifact of the slug the subject is tagged for wins,
// then any.
func GetMetadata(ctx context.Context, s *oci.Store, subject v1.Hash) ([]byte, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		return nil, err
	}
	slugs := map[string]bool{}
	for _, m := range idx.Manifests {
		if m.Digest == subject && m.ArtifactType == "" {
			slugs[m.Annotations[oci.SlugAnnotation]] = true
		}
	}
	var fallback *v1.Descriptor
	for i, m := range idx.Manifests {
		if m.ArtifactType != MetadataArtifactType || m.Annotations[oci.SubjectAnnotation] != subject.String() {
			continue
		}
		if slugs[m.Annotations[oci.SlugAnnotation]] {
			return ReadMetadataArtifact(ctx, s, m.Digest)
		}
		if fallback == nil {
			fallback = &idx.Manifests[i]
		}
	}
	if fallback != nil {
		return ReadMetadataArtifact(ctx, s, fallback.Digest)
	}
	return nil, fmt.Errorf("metadata of %s: %w", subject, oci.ErrNotFound)
}

// ReadMetadataArtifact reads metadata.json out of the artifact manifest h.
func ReadMetadataArtifact(ctx context.Context, s *oci.Store, h v1.Hash) ([]byte, error) {
	man, err := s.Manifest(ctx, v1.Descriptor{Digest: h})
	if err != nil {
		return nil, fmt.Errorf("reading metadata artifact: %w", err)
	}
	for _, l := range man.Layers {
		if l.MediaType == MetadataMediaType {
			if l.Size > MaxMetadataSize {
				return nil, errors.New("bottle metadata artifact is too large")
			}
			return s.ReadBlob(ctx, l.Digest, MaxMetadataSize)
		}
	}
	return nil, fmt.Errorf("artifact %s carries no %s layer", h, MetadataMediaType)
}
