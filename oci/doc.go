// Package oci is bb's local content-addressed store: an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) on disk.
//
// Every blob enters the store the same way: it is written to a temporary
// file in the store's ingest directory, hashed and counted while it is
// written, verified against what the caller expected, synced, and only
// then renamed to blobs/sha256/<digest> (never over an existing blob). A
// failed or cancelled write leaves nothing behind; the temporary files of
// a killed one go at the next write and at GC once they are stale.
// index.json is rewritten atomically (synced temp file + rename) under an
// exclusive lock, so concurrent bb processes never lose each other's tags.
//
// The store owns rollback: Discard (and Track's Added.Rollback) removes
// only blobs this process's writers created, that nobody reused since (a
// reuse touches the blob under a shared lock) and that no tag reaches.
// Check (bb doctor) verifies tags, blobs, temporary files and modes; the
// store's directories are 0700 and its files 0600 or 0400.

// Digests are sha256 or sha512 (blobs/sha512/<digest>, as the image layout
// allows): a Writer hashes with the algorithm it was started with and
// rehashes at Commit when asked for the other one. Delete is the explicit
// removal a registry DELETE needs: at once, under the index lock, and
// refused (InUseError) for what a tag still reaches.
//
// Manifest and Config read an image's manifest and config: bounded
// (MaxManifestSize, MaxConfigSize), checked against their digest (every
// ReadBlob is) and parsed. Store.Image returns a go-containerregistry
// v1.Image backed by the store's files.
//
// The store owns the diffID → layer blob index (LayerByDiffID): it is
// derived from the store's content (each image's config diffIDs paired
// with its manifest's layers) plus the layers this process wrote
// (RecordLayer, which layer.Write calls with the uncompressed size it
// counted), kept in memory and not persisted. A lookup marks the blob as
// used under the store's lock, so GC leaves it for GCGrace while a commit
// builds on it. The side file older versions kept in the store root
// (bb-layers.json) is not read; GC removes it.
package oci
