package archive

import (
	"errors"
	"strings"

	"github.com/bot-bottle/bb/state"
)

// File names inside an archive.
const (
	LayoutFile   = "oci-layout"
	IndexFile    = "index.json"
	ManifestFile = "manifest.json"
	BlobsDir     = "blobs/sha256/"
)

// Limits on the JSON files Import reads whole.
const (
	MaxLayoutSize   = 4 << 10
	MaxIndexSize    = 4 << 20
	MaxManifestSize = 4 << 20
	// MaxEntries bounds the number of tar entries Import accepts.
	MaxEntries = 1 << 16
	// MaxPadding bounds the zero bytes accepted after the end-of-archive
	// marker (tar pads to its record size, 10 KiB by default).
	MaxPadding = 1 << 20
	// MaxIndexDepth bounds how deep indexes nest below index.json.
	MaxIndexDepth = 4
	// MaxIndexEntries bounds the entries of one index (index.json, a
	// nested index) and of manifest.json.
	MaxIndexEntries = 1024
	// MaxImages bounds the distinct images of one archive.
	MaxImages = 1024
	// MaxLayers bounds the layers of one image.
	MaxLayers = 1000
)

// ErrInvalid is wrapped by every error about the content of an archive.
var ErrInvalid = errors.New("invalid archive")

// splitName splits a reference into its repository and tag (default
// "latest"); a digest reference has no tag.
func splitName(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ""
	}
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// familiar shortens docker.io/library/x to x, as docker's RepoTags do.
func familiar(ref string) string {
	for _, p := range []string{"docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"} {
		if strings.HasPrefix(ref, p) {
			return strings.TrimPrefix(ref, p)
		}
	}
	return ref
}

// slugFromName recovers the slug from a committed image's name
// (bot-bottle-committed-<slug>[:tag], with or without a registry).
func slugFromName(ref string) string {
	repo, _ := splitName(familiar(ref))
	return state.CommittedSlug(repo)
}
