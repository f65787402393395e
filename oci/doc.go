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
// The store does not interpret image contents beyond what it needs to tag
// and garbage-collect them; reading images goes through go-containerregistry
// (Store.Image returns a v1.Image backed by the store's files).
package oci
