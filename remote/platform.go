package remote

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/bot-bottle/bb/oci"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pickImage chooses, from an image index, the image bb pulls: the Linux
// image of this machine's architecture (bottles are Linux), or the only
// image when the index holds one. Entries that are not runnable (platform
// unknown/unknown: the bottle metadata bb export pairs with the image,
// docker's attestations) and artifacts are skipped. That is what an
// index pushed from a bb export (crane push, oras copy, regctl image
// copy) holds.
func pickImage(src string, ib []byte) (v1.Descriptor, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(ib, &idx); err != nil {
		return v1.Descriptor{}, fmt.Errorf("parsing the image index %s: %w", src, err)
	}
	if len(idx.Manifests) > MaxIndexEntries {
		return v1.Descriptor{}, fmt.Errorf("%s: image index has %d entries; bb reads at most %d (MaxIndexEntries)", src, len(idx.Manifests), MaxIndexEntries)
	}
	var images []v1.Descriptor
	for _, d := range idx.Manifests {
		if d.MediaType != types.OCIManifestSchema1 && d.MediaType != types.DockerManifestSchema2 {
			continue
		}
		if d.ArtifactType != "" || (d.Platform != nil && (d.Platform.OS == "unknown" || d.Platform.Architecture == "unknown")) {
			continue
		}
		if d.Size <= 0 || d.Size > oci.MaxManifestSize || oci.ValidHash(d.Digest) != nil {
			return v1.Descriptor{}, fmt.Errorf("%s: image index names manifest %s of %d bytes: refusing it", src, d.Digest, d.Size)
		}
		images = append(images, d)
	}
	for _, d := range images {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d, nil
		}
	}
	if len(images) == 1 && images[0].Platform == nil {
		return images[0], nil
	}
	return v1.Descriptor{}, fmt.Errorf("%s is an image index without a linux image for this host (linux/%s; %d runnable images): nothing was downloaded; pull one platform's manifest by digest", src, runtime.GOARCH, len(images))
}

// isIndexType reports whether a fetched manifest is an image index, by
// the registry's Content-Type or the document's own mediaType.
func isIndexType(mt types.MediaType, b []byte) bool {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	_ = json.Unmarshal(b, &m)
	if m.MediaType != "" {
		mt = m.MediaType
	}
	return mt == types.OCIImageIndex || mt == types.DockerManifestList
}
