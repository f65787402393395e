// Package layer turns a tar stream into a compressed OCI layer in the store
// in a single pass.
//
//	tar stream ──► sha256 (diffID) ──► pgzip (all cores) ──► sha256 + count ──► store temp file ──► blobs/sha256/<digest>
//
// Nothing is buffered beyond pgzip's blocks: memory stays constant whatever
// the size of the root filesystem. The result is the layer's descriptor and
// diffID; its bytes are the store's blob, so they can be read again (unlike
// go-containerregistry's stream.Layer). Write tells the store what the
// blob holds (diffID, uncompressed size: oci.Store.RecordLayer), so a
// later step finds the layer by its diffID without decompressing it.
//
// Recompress turns a stored gzip layer into a zstd one or back, in one
// streamed pass that checks the source blob's digest and size and its
// diffID while it decompresses; a blob that fails leaves nothing behind.
package layer
