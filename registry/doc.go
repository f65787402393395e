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
// Any OCI repository name is accepted: a nested one maps onto the slug
// with each '/' as "___" (team/app ◄──► slug team___app), which no
// repository name contains, so the mapping reverses (storeName, repoName).
// A push of <repo>:latest also gets a history tag, as a commit does.
//
// All repositories share the store's blobs: a blob, or a manifest by
// digest, is visible under any repository name, and a cross-repository
// mount succeeds whenever the store has the blob. Digests are sha256 or
// sha512 (blobs/sha512/ in the store).
//
// With Options.AllowDelete, DELETE of tags, manifests and blobs maps onto
// the store as bb rm and bb gc act (see delete.go): what a tag still
// reaches is never removed.
//
// Blobs are served from the store's files with http.ServeContent (HEAD,
// Range, sendfile on plain HTTP), so serving a multi-GB layer takes
// constant memory. Manifests are read whole, bounded by
// oci.MaxManifestSize. Pushes (Options.AllowPush) spool every upload to a
// temporary file in the store (oci.Writer), hashing while writing; an
// upload session survives between requests until it is committed,
// cancelled, failed at its closing PUT, idle for Options.UploadIdleTimeout,
// or evicted as the longest idle when Options.MaxUploads are open.
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
