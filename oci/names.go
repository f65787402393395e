package oci

import (
	"fmt"
	"regexp"
)

// Annotations bb reads and writes.
const (
	// RefNameAnnotation names an index.json entry (the OCI layout's tag).
	RefNameAnnotation = "org.opencontainers.image.ref.name"
	// ContainerdNameAnnotation carries the full image reference for
	// containerd, docker and Apple container when loading a layout archive.
	ContainerdNameAnnotation = "io.containerd.image.name"
	// AppleNameAnnotation is the name Apple's container CLI reads first.
	AppleNameAnnotation = "com.apple.containerization.image.name"
	// CreatedAnnotation is the OCI creation time annotation.
	CreatedAnnotation = "org.opencontainers.image.created"

	// SlugAnnotation and the ones below describe the bottle a snapshot was
	// made from.
	SlugAnnotation      = "dev.bot-bottle.slug"
	BackendAnnotation   = "dev.bot-bottle.backend"
	SourceAnnotation    = "dev.bot-bottle.source"
	BaseImageAnnotation = "dev.bot-bottle.base-image"
	// SubjectAnnotation records, on an index.json entry, the digest of the
	// manifest the entry's artifact belongs to (a snapshot's metadata and
	// file index, a pushed referrer), so finding it needs no manifest
	// reads.
	SubjectAnnotation = "dev.bot-bottle.subject"
	// BaseConfigAnnotation, on a snapshot's manifest, is the digest of the
	// config of the image the snapshot builds on (Docker's image ID). GC
	// keeps that blob while the snapshot is tagged, so that the next
	// commit of a bottle of that image finds the image whole in the store
	// (its layers are the snapshot's) and need not copy it from the
	// daemon again.
	BaseConfigAnnotation = "dev.bot-bottle.base-config"
)

// Limits on what bb reads whole into memory.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
	MaxIndexSize    = 64 << 20
)

var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// ValidTag reports whether name is usable as a tag in the store (the OCI
// distribution tag grammar, which every client accepts).
func ValidTag(name string) error {
	if !tagRE.MatchString(name) {
		return fmt.Errorf("invalid tag %q: use letters, digits, '.', '_' and '-', at most 128 characters", name)
	}
	return nil
}
