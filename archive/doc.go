// Package archive moves snapshots between hosts as single tar files.
//
// An archive is at once an OCI image layout and a legacy docker archive:
//
//	oci-layout                      {"imageLayoutVersion":"1.0.0"}
//	index.json                      one entry per snapshot (names below)
//	manifest.json                   [{Config, RepoTags, Layers}] for docker load
//	blobs/sha256/<hex>              indexes, manifests, configs, layers, metadata
//
// manifest.json points at the same blobs/sha256 files as index.json, so
// every blob is stored once. A snapshot with bottle metadata is exported
// as an image index of two entries: the image manifest (with its
// platform) and the metadata artifact, whose subject is the image
// (platform unknown/unknown, the convention docker and containerd use for
// entries that are not runnable). index.json so names exactly one entry
// per snapshot, which tools that take "the" image of a layout need
// (skopeo oci-archive:FILE without a name, crane push of the unpacked
// directory), while tools that index the whole graph find the metadata as
// a referrer of the image (oras discover --oci-layout --platform ...;
// regctl artifact tree shows it as the index's second child; regctl
// artifact list of an OCI layout only looks at index.json's own entries
// and does not find it). umoci 0.4.7 takes both entries for candidate
// images: ExportOptions.NoMetadata names the image manifest itself.
// Readers: docker load, podman load, skopeo
// (oci-archive: and docker-archive:), umoci, containerd (ctr image
// import), crane, oras, regctl and Apple's container image load. Each
// index.json entry names its snapshot three ways:
// io.containerd.image.name and com.apple.containerization.image.name
// carry the full reference
// (docker.io/library/bot-bottle-committed-<slug>:latest),
// org.opencontainers.image.ref.name "latest" in a one-snapshot archive,
// else bot-bottle-committed-<slug> (distinct per snapshot, without ':' or
// '/', which oras, regctl and umoci read as separators). bb's own
// annotations (dev.bot-bottle.slug, ...) say which bottle it is.
//
// Export copies blobs from the store as they are: no recompression
// (unless ExportOptions.Compression asks for gzip in place of zstd), one
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
// The one kind of link accepted is a docker archive's relative symbolic
// link from one of its files to another (podman save and skopeo's
// docker-archive: write <id>/layer.tar so); nothing is created for it.
package archive
