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
// smolvm flattens an image's layers with an in-guest copy that mishandles
// hard links across layers, so Pack accepts single-layer images only
// (bb's smolmachines snapshots always are).
//
// The registry is injected (Options.Serve): pack depends on no registry
// implementation, and tests can serve from anything that answers the
// distribution API.
package pack
