// Package archive moves snapshots between hosts as single tar files.
//
// An archive is at once an OCI image layout and a legacy docker archive:
//
//	oci-layout                      {"imageLayoutVersion":"1.0.0"}
//	index.json                      one entry per image (names below),
//	                                plus the bottle's metadata artifact
//	manifest.json                   [{Config, RepoTags, Layers}] for docker load
//	blobs/sha256/<hex>              manifests, configs, layers, metadata
//
// manifest.json points at the same blobs/sha256 files as index.json, so
// every blob is stored once. Readers: docker load, skopeo (oci-archive:
// and docker-archive:), umoci, containerd, oras (--from-oci-layout) and
// Apple's container image load. Each image's index.json entry names it
// three ways: io.containerd.image.name and
// com.apple.containerization.image.name carry the full reference
// (docker.io/library/bot-bottle-committed-<slug>:latest),
// org.opencontainers.image.ref.name the tag ("latest"). bb's own
// annotations (dev.bot-bottle.slug, ...) say which bottle it is. Because
// index.json also lists the metadata artifact, tools that pick an image
// from a layout need its name: skopeo's oci-archive:FILE:latest.
//
// Export copies blobs from the store as they are: no recompression, one
// read each, fixed modes and times, so the same snapshot always gives the
// same bytes. Import reads the tar once, from a file or a pipe: each blob
// goes into the store while its sha256 and size are checked against its
// name and header, and, in the same pass, its uncompressed sha256 (a
// gzip or zstd blob is decompressed alongside, never kept), so that
// each layer is checked against its config's diff_id whichever of the
// two came first; then the graph (index.json or manifest.json,
// manifests, configs, layers) is checked against what arrived. Each
// distinct manifest, config and index is parsed once however often it is
// named, and nesting, entries and layers are bounded (MaxIndexDepth,
// MaxIndexEntries, MaxImages, MaxLayers). Archives that are not
// well-formed (paths that escape, links or devices, duplicate entries,
// truncation, trailing data, oversized JSON, missing or mismatched blobs)
// are refused with an error wrapping ErrInvalid, and the blobs the import
// added are removed again: the store and the bottle state are as before.
package archive
