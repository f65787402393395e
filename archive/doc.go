// Package archive reads and writes snapshots as single tar files: the
// archives that carry them between hosts (bb export, bb import) and the
// streams the Docker and Apple container backends load.
//
// An export is at once an OCI image layout and a legacy docker archive:
//
//	oci-layout                      {"imageLayoutVersion":"1.0.0"}
//	index.json                      one or two entries per snapshot (below)
//	manifest.json                   [{Config, RepoTags, Layers}] for docker load
//	blobs/sha256/<hex>              indexes, manifests, configs, layers, metadata
//
// manifest.json points at the same blobs/sha256 files as index.json, so
// every blob is stored once. index.json comes in two layouts
// (ExportOptions.Layout), because no one layout serves every reader:
// skopeo 1.9 (containers/image 5.23 oci/layout/oci_transport.go:183-190)
// and crane (cmd/crane/cmd/push.go:117) take "the" image of a layout only
// when index.json has exactly one entry, while regctl 0.11 finds the
// referrers of an OCI layout only through a second index.json entry, the
// referrers tag sha256-<hex> (scheme/ocidir/referrer.go:97-122,
// ocidir.go:365-389), and oras (oras-go content/oci/readonlyoci.go:171-186)
// indexes only what index.json entries reach, so a referrer of the entry
// a name resolves to would have to be reached from that entry itself.
//
// LayoutSingle (the default) exports a snapshot with bottle metadata as
// an image index of two entries: the image manifest (with its platform)
// and the metadata artifact, whose subject is the image (platform
// unknown/unknown, the convention docker and containerd use for entries
// that are not runnable). index.json names exactly one entry per
// snapshot: skopeo oci-archive:FILE and crane push DIR need no name or
// --index; oras discover --oci-layout needs --platform (the name resolves
// to the index, whose referrer the metadata is not); regctl artifact tree
// shows the metadata as the index's second child, regctl artifact list
// does not find it; umoci 0.4.7 takes both manifests under the name for
// candidate images (oci/casext/refname.go:78-104) and needs
// ExportOptions.NoMetadata.
//
// LayoutReferrers names the image manifest itself and, after it, the
// referrers tag schema's index (ref.name sha256-<image hex>, no other
// annotation, as regctl image copy --referrers writes an OCI layout)
// listing the metadata artifact. regctl artifact list ocidir://DIR,
// oras discover --oci-layout DIR:latest and umoci unpack --image
// DIR:latest work without extra flags; skopeo needs the name
// (oci-archive:FILE:latest), crane push needs --index, podman load reads
// the docker archive half (manifest.json then carries full names, which
// podman would otherwise prefix with localhost/), and ctr image import
// (containerd 1.6, import.go:170-177) makes an image of the referrers
// entry too and fails to unpack it unless given --no-unpack.
//
// Readers: docker load, podman load, skopeo
// (oci-archive: and docker-archive:), umoci, containerd (ctr image
// import), crane, oras, regctl and Apple's container image load. The
// index.json entry of each snapshot (its image's own in LayoutReferrers)
// names it three ways:
// io.containerd.image.name and com.apple.containerization.image.name
// carry the full reference
// (docker.io/library/bot-bottle-committed-<slug>:latest),
// org.opencontainers.image.ref.name "latest" in a one-snapshot archive,
// else bot-bottle-committed-<slug> (distinct per snapshot, without ':' or
// '/', which oras, regctl and umoci read as separators). bb's own
// annotations (dev.bot-bottle.slug, ...) say which bottle it is.
//
// Export copies blobs from the store as they are: no recompression
// (unless ExportOptions.Compression asks for gzip or zstd: then
// snapshot.Convert makes, or finds, the snapshot's copy in that
// compression), one read each, fixed modes and times, so the same snapshot always gives the
// same bytes. Write plans the whole archive (every blob checked to be in
// the store with its size, index.json, manifest.json) before it emits the
// first byte through Writer, the one tar writer of bb's archives: it
// streams, never seeks, knows each entry's size up front, and copies a
// store blob inside the kernel when it can. The runtimes' loads write
// through it too: WriteDocker streams one image as docker save lays it
// out (DockerManifest) into the Docker daemon's load, its gzip layers as
// stored or decompressed and leaving out the layers the daemon has;
// WriteImage writes a v1.Image as the OCI layout Apple's container image
// load reads.
//
// Read, the reading half of bb import (bottle.Manager.Import adopts what
// it finds; this package knows nothing of bottles), reads the tar once,
// from a file or a pipe: each blob goes into the store while its sha256
// and size are checked against its name and header, and, in the same
// pass, its uncompressed sha256 (a gzip or zstd blob is decompressed
// alongside, never kept), so that each layer is checked against its
// config's diff_id whichever of the two came first; then the graph
// (index.json or manifest.json, manifests, configs, layers) is checked
// against what arrived. Each distinct manifest, config and index is
// parsed once however often it is named, and nesting, entries and
// layers are bounded (MaxIndexDepth, MaxIndexEntries, MaxImages,
// MaxLayers). Archives that are not well-formed (paths that escape,
// links or devices, duplicate entries, truncation, trailing data,
// oversized JSON, missing or mismatched blobs) are refused with an error
// wrapping ErrInvalid, and the blobs Read added are removed again: the
// store is as before. The one kind of link accepted is a docker
// archive's relative symbolic link from one of its files to another
// (podman save and skopeo's docker-archive: write <id>/layer.tar so);
// nothing is created for it.
package archive
