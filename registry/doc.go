// Package registry serves bb's local store (an oci.Store) as an OCI
// distribution registry, so that any registry client (skopeo, crane,
// docker, containerd, Apple's container, smolvm's pack) can pull a
// snapshot from this host, and, when asked, push into the store.
//
// Repositories are bottle slugs. The store keeps one flat set of tags:
// <slug> is a slug's current snapshot and <slug>-<time> its history. The
// registry maps them as
//
//	localhost:PORT/<slug>:latest  ◄──►  store tag <slug>
//	localhost:PORT/<slug>:<T>     ◄──►  store tag <slug>-<T>
//
// All repositories share the store's blobs: a blob, or a manifest by
// digest, is visible under any repository name, and a cross-repository
// mount succeeds whenever the store has the blob.
//
// Blobs are served from the store's files with http.ServeContent (HEAD,
// Range, sendfile on plain HTTP), so serving a multi-GB layer takes
// constant memory. Manifests are read whole, bounded by
// oci.MaxManifestSize. Pushes (Options.AllowPush) spool every upload to a
// temporary file in the store (oci.Writer), hashing while writing; an
// upload session survives between requests until it is committed,
// cancelled, or idle for Options.UploadIdleTimeout.
//
// The registry listens on loopback unless Options.AllowNonLoopback is set,
// and then requires HTTP basic-auth credentials (bcrypt hashes, as in an
// htpasswd file made with htpasswd -B). On loopback it also refuses
// requests whose Host header is not a loopback name, so a web page cannot
// reach it by DNS rebinding.
//
// go-containerregistry's pkg/registry was not used: it keeps manifests and
// upload sessions in memory and knows nothing of the store's tag layout.
package registry
