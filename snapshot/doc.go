// Package snapshot turns a bottle's root filesystem, handed over as a tar
// stream by a backend, into an OCI image in the local store.
//
//	Source.Stream ──► Filter (excludes, entry checks, normalisation)
//	             ──► layer.Write (diffID, pgzip, digest, size; one pass)
//	             ──► config + manifest (the base image's config kept)
//	             ──► store: blobs (Build), then the slug's tags in
//	                 index.json (Publish)
//
// A snapshot either lands whole or not at all: blobs become visible only
// after they are verified, and tags only after every blob is in place.
// The previous snapshot of the slug stays tagged until the new one is.
//
// What the store keeps next to a snapshot, as untagged index.json entries
// whose dev.bot-bottle.subject is the snapshot's manifest: the bottle's
// metadata.json (PutMetadata), the file index of incremental commits
// (PutIndex), and copies with the layers in another compression, for push
// and export (Convert). They go with the snapshot's last tag.
package snapshot
