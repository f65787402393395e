package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	orasreg "oras.land/oras-go/v2/registry"
	orasremote "oras.land/oras-go/v2/registry/remote"
)

// maxReferrers bounds how many referrers of a snapshot bb looks at.
const maxReferrers = 1000

// orasRepo returns an oras-go client of the same repository that sends
// its requests through the client dial made: the same transport (TLS,
// plain-HTTP guard), credentials, token and user agent. oras-go builds
// the referrer's manifest and speaks the referrers API (or its tag
// fallback); it does not authenticate on its own.
func (c *client) orasRepo() *orasremote.Repository {
	return &orasremote.Repository{
		Reference: orasreg.Reference{Registry: c.reg, Repository: c.repo},
		PlainHTTP: c.scheme == "http",
		Client:    c.http,
		// Registries without the referrers API often refuse deletes;
		// an outdated referrers index left behind is harmless.
		SkipReferrersGC:  true,
		MaxMetadataBytes: oci.MaxManifestSize,
	}
}

// pushMetadata attaches raw (metadata.json) to subject as a referrer
// artifact. The artifact's creation time is the snapshot's, so pushing
// the same snapshot and metadata again yields the same manifest.
func (c *client) pushMetadata(ctx context.Context, subject v1.Descriptor, raw []byte, slug, created string) (v1.Descriptor, error) {
	repo := c.orasRepo()
	layer := ocispec.Descriptor{
		MediaType:   string(snapshot.MetadataMediaType),
		Digest:      digest.FromBytes(raw),
		Size:        int64(len(raw)),
		Annotations: map[string]string{ocispec.AnnotationTitle: "metadata.json"},
	}
	if ok, err := repo.Exists(ctx, layer); err != nil {
		return v1.Descriptor{}, err
	} else if !ok {
		if err := repo.Push(ctx, layer, bytes.NewReader(raw)); err != nil {
			return v1.Descriptor{}, err
		}
	}
	if _, err := time.Parse(time.RFC3339, created); err != nil {
		created = time.Now().UTC().Format(time.RFC3339)
	}
	sub := toOCI(v1.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size})
	ann := map[string]string{ocispec.AnnotationCreated: created}
	if slug != "" {
		ann[oci.SlugAnnotation] = slug
	}
	d, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, snapshot.MetadataArtifactType, oras.PackManifestOptions{
		Subject:             &sub,
		Layers:              []ocispec.Descriptor{layer},
		ManifestAnnotations: ann,
	})
	if err != nil {
		return v1.Descriptor{}, err
	}
	return fromOCI(d)
}

// findMetadata returns the metadata.json attached to subject (nil when
// there is none), verified against the digests that lead to it.
func (c *client) findMetadata(ctx context.Context, subject v1.Descriptor) ([]byte, *v1.Descriptor, error) {
	repo := c.orasRepo()
	var found []ocispec.Descriptor
	errEnough := errors.New("enough referrers")
	err := repo.Referrers(ctx, toOCI(subject), snapshot.MetadataArtifactType, func(refs []ocispec.Descriptor) error {
		found = append(found, refs...)
		if len(found) >= maxReferrers {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) && !errors.Is(err, errdef.ErrNotFound) {
		return nil, nil, err
	}
	// Newest first by creation annotation; among equals, the last listed
	// (the referrers index appends) wins.
	var best *ocispec.Descriptor
	for i := range found {
		d := &found[i]
		if d.ArtifactType != "" && d.ArtifactType != snapshot.MetadataArtifactType {
			continue
		}
		if best == nil || d.Annotations[ocispec.AnnotationCreated] >= best.Annotations[ocispec.AnnotationCreated] {
			best = d
		}
	}
	if best == nil {
		return nil, nil, nil
	}
	if best.Size <= 0 || best.Size > oci.MaxManifestSize {
		return nil, nil, fmt.Errorf("metadata artifact %s has an unreasonable size (%d bytes)", best.Digest, best.Size)
	}
	mb, err := fetchAll(ctx, repo, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: best.Digest, Size: best.Size})
	if err != nil {
		return nil, nil, fmt.Errorf("fetching metadata artifact %s: %w", best.Digest, err)
	}
	var man ocispec.Manifest
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, nil, fmt.Errorf("parsing metadata artifact %s: %w", best.Digest, err)
	}
	if man.Subject == nil || man.Subject.Digest.String() != subject.Digest.String() {
		return nil, nil, fmt.Errorf("metadata artifact %s does not refer to %s", best.Digest, subject.Digest)
	}
	for _, l := range man.Layers {
		if l.MediaType != string(snapshot.MetadataMediaType) {
			continue
		}
		if l.Size < 0 || l.Size > snapshot.MaxMetadataSize {
			return nil, nil, fmt.Errorf("bottle metadata in %s is larger than %d bytes", best.Digest, snapshot.MaxMetadataSize)
		}
		raw, err := fetchAll(ctx, repo, l)
		if err != nil {
			return nil, nil, fmt.Errorf("fetching bottle metadata %s: %w", l.Digest, err)
		}
		d, err := fromOCI(*best)
		if err != nil {
			return nil, nil, err
		}
		return raw, &d, nil
	}
	return nil, nil, fmt.Errorf("metadata artifact %s carries no %s layer", best.Digest, snapshot.MetadataMediaType)
}

// fetchAll reads a small blob or manifest, verifying digest and size.
func fetchAll(ctx context.Context, repo *orasremote.Repository, d ocispec.Descriptor) ([]byte, error) {
	rc, err := repo.Fetch(ctx, d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return content.ReadAll(rc, d)
}
