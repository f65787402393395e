// Package remote moves snapshots between bb's local store and a remote
// OCI registry (distribution, Harbor, GHCR, ECR, ...), the shared store
// of users who outgrow one machine.
//
// Push sends an image from the store:
//
//	for each blob (config, layers), a few at a time:
//	  HEAD    /v2/<repo>/blobs/<digest>               present: skipped
//	  POST    /v2/<repo>/blobs/uploads/?mount=&from=  known in another repo: mounted
//	  GET     <saved upload location>                 interrupted earlier: resume at Range
//	  POST    /v2/<repo>/blobs/uploads/               new upload session
//	  PUT     <location>?digest=  (body)              small blob: one request
//	  PATCH   <location>  Content-Range (chunk)...    large blob: chunks, session saved after each
//	  PUT     <location>?digest=                      close the upload
//	PUT /v2/<repo>/manifests/<tag>
//	the bottle's metadata.json as a referrer artifact (oras-go), with the
//	referrers tag-schema fallback for registries without the referrers API
//
// With Options.Compression (gzip or zstd), what goes up is the
// snapshot's copy in that compression (snapshot.Convert: made once, kept
// in the store next to the snapshot, reused by the next push or export).
//
// Pull reads a manifest (bounded, digest verified; of an index, the
// linux image for this host's architecture) and refuses, before any blob
// is downloaded, what is not a container image (an artifact, an unknown
// media type, more than MaxLayers layers) or what Options.BeforeFetch
// refuses (a taken slug). It streams the config, then the layers, into
// the store with digest and size verified while writing and each layer's
// uncompressed content checked against its config's diff_id in the same
// pass (layer.DiffIDWriter; a layer already present is checked from the
// store), and finds the metadata referrer. A manifest or blob that moves
// no byte for Options.IdleTimeout is given up on, with an error naming it
// and the registry. On any failure the blobs the pull added are removed
// again. Adopting the image under a slug is the caller's job
// (bottle.Manager.Adopt).
//
// The probe of the registry and the auth handshake (the /v2/ ping, the
// token endpoint, and a token refreshed later on a 401) are bounded by
// Options.AuthTimeout (--auth-timeout, default 30 s): each request must
// connect and answer within it, move a byte at least that often, end
// within twice it and stay under 64 KiB; otherwise an AuthStallError
// names the endpoint. go-containerregistry's handshake has no timeout of
// its own, so a registry whose token endpoint never answered hung bb.
//
// Credentials come from the docker config (~/.docker/config.json, or
// $DOCKER_CONFIG/config.json) and docker credential helpers through
// go-containerregistry's authn.DefaultKeychain, as docker and crane read
// them; token and basic auth go through its transport package. The
// referrer calls (oras-go) go through the same authenticated client: one
// auth stack per push or pull. Plain
// HTTP is used only for loopback registries, or when Options.PlainHTTP or
// Options.Insecure allow it.
//
// State kept under the store root, in remote/:
//   - blobs.json: which repositories of which registry hold which blobs
//     (from earlier pushes and pulls), to try cross-repository mounts;
//   - uploads/<key>.json: the upload session (location, accepted offset)
//     of a blob being pushed, so a push that was interrupted resumes from
//     the last accepted chunk. A session the registry no longer knows is
//     dropped and the blob starts over.
//
// Distribution (v2.8 and later) discards an upload session whose data
// grew past the offset in its signed location, which is what happens when
// a chunk is cut off half way: against it, a push resumes after an
// interruption between chunks (bb stopped, the registry restarted, the
// network down between requests) and starts the blob over after an
// interruption inside a chunk. Registries that report the bytes they kept
// (GET on the upload location, Range header) resume from there.
package remote
