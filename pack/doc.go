// Package pack turns a snapshot in bb's store into a smolvm machine
// artifact without Docker: it serves the snapshot from an embedded
// registry on 127.0.0.1 for the duration of the pack, runs
//
//	smolvm pack create --image localhost:PORT/<slug>:latest -o OUT
//
// (smolvm's in-guest puller speaks plain HTTP to localhost on its own;
// when the registry's <slug>:latest is not the manifest being packed, as
// during a commit before it is published, the reference names the
// manifest by digest instead),
// stops the registry, and moves the launcher (OUT) and the artifact
// (OUT.smolmachine) into place only when smolvm succeeded, so a failed
// pack leaves the previous artifact untouched.
//
// smolvm merges an image's layers with an in-guest cp -a that never
// applies whiteouts and mishandles hard links across layers, so Pack
// hands it one layer: an image of several (an incremental chain) is
// flattened first (Flatten). The flattened layer copies the compressed
// blocks of each layer that the layers above it leave alone and
// compresses only the rest again (stitch.go). Its compression follows
// the change; its decompression does not: the diffID is the SHA-256 of
// the whole new tar, so the first layer is inflated whole.
//
// The registry is injected (Options.Serve): pack depends on no registry
// implementation, and tests can serve from anything that answers the
// distribution API.
package pack
