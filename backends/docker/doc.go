// Package docker is bb's Docker backend: it snapshots a running container
// named bot-bottle-<slug> through the Docker Engine API, loads snapshots
// back into the daemon as bot-bottle-committed-<slug>:latest and boots
// bottles from them.
//
// # Streaming the root filesystem
//
// Two methods, chosen with PrepareOptions.Method:
//
//   - exec (default): GNU tar runs inside the bottle as root, started
//     through the exec API, and its stdout is demultiplexed into the
//     pipeline. It keeps every xattr and numeric owner. It needs GNU tar in
//     the image, and the daemon refuses exec into a paused container.
//   - export: GET /containers/{id}/export. No guest tar is needed and it
//     works on paused containers, but the daemon keeps only the
//     security.capability xattr. PrepareOptions.Pause uses it: the bottle
//     is paused for the duration of the stream (a consistent snapshot) and
//     always unpaused afterwards.
//
// Volumes and bind mounts are left out unless IncludeMounts is set (exec
// only: the daemon's export never contains them).
//
// An incremental snapshot with the exec method does not run tar in the
// bottle when bb runs on the daemon's host with the rights to read the
// container's overlay2 directories (root, no user namespace remapping):
// the mount table must show the overlay mount at GraphDriver's
// MergedDir with GraphDriver's UpperDir, and the changed paths are then
// read from the merged directory, each resolved one component at a time
// with openat and O_NOFOLLOW (the tree is the bottle's own content: no
// symlink in it is followed, and a file is opened for reading only once
// its O_PATH descriptor shows a regular file, so no device driver is
// ever opened). The entries are those GNU tar would write
// (types, numeric owners, modes, mtimes, device numbers, hard links among
// the streamed paths, user.* and security.* xattrs). A bottle that is
// stopped, removed or restarted before the stream ends fails the
// snapshot. This takes neither the daemon nor a process in the bottle
// into the data path: on a loaded 2-core host, reading the 8.7k changed
// paths (160 MB) took 0.5 s this way and 8 s through docker exec tar.
// Runtime.ChangeList = ChangesDaemon keeps the daemon's change list and
// tar in the bottle.
//
// Measured on 2 cores (dockerd 20.10, overlay2) with a 340 MB bottle of
// which 90 MB changed: reading the whole root filesystem takes 2.3 s
// through exec and 1.2 s through export (the exec stream is the slower
// path through the daemon), but an incremental snapshot through exec reads
// only the changed files (1.5 s, of which 0.8 s is the daemon's change
// list), while export must read everything and filter it (2.5 s). Exec
// stays the default for its fidelity (xattrs) and its cheap diffs.
//
// # Incremental snapshots
//
// By default a snapshot is the base image's layers plus one diff layer,
// which the daemon loads several times faster than a flattened image
// because it already has the base layers. The change list names the
// paths that differ from the image; only those (and their parent
// directories) are streamed, and deleted paths become OCI whiteouts
// (.wh.<name>, or .wh..wh..opq in a directory that replaced a deleted
// one). Where bb can read the container's overlay2 upper directory (see
// above) the change list is a walk of it (openat, O_NOFOLLOW; a
// character device 0/0 is a deletion, a directory with the
// trusted.overlay.opaque xattr replaced a deleted one): it is the
// daemon's own diff, at a fraction of the cost of asking the daemon for
// it (0.1 s against 2.4 s for 8.7k changes of a 1.1 GB bottle). A
// directory renamed with overlayfs's redirect_dir (whose lower contents
// its upper copy does not show) sends bb back to the daemon's change list
// (GET /containers/{id}/changes), as does any other storage driver. The
// base layers are ingested once into bb's store from the daemon's image
// save; the store finds them by diffID (oci.Store.LayerByDiffID) in the
// snapshots that use them, and keeps them from GC while a commit builds
// on them. A bottle booted from a bb snapshot builds on that snapshot's
// layers. When the base has
// MaxBaseLayers layers or more, when mounts are included, or with
// PrepareOptions.Full, the snapshot is one flattened layer instead.
//
// The daemon's change list comes from its comparison of file metadata
// (size, mode, owner, mtime): a change that keeps all of them, such as a
// new hard link to a file of the base image, is not seen, and the link
// arrives as a copy. Use a full snapshot where that matters. The upper
// directory has no such blind spot: overlayfs copies a file up before
// any change to it, links included.
//
// # Loading
//
// Load streams a docker-archive into ImageLoad, leaving out the layers
// whose chain of diffIDs the daemon already has, and fails on an
// errorDetail in the load's JSON stream. Gzip layers go as they are
// stored (the daemon's load decompresses a compressed layer.tar and
// checks its diffID): bb neither decompresses them nor needs their
// uncompressed size, and the daemon spools fewer bytes. If the daemon
// refuses them, the load is retried with the layers decompressed from the
// store on the fly. When the daemon already has the image (same
// config digest) it is only tagged. Load takes the manifest and config
// the commit just built (bottle.Snapshot.RawManifest, RawConfig) and
// reads them from the store only on a resume.
//
// A daemon with containerd's image store (docker info: driver-type
// io.containerd.snapshotter.v1; see containerdStore) names an image by
// the digest of the manifest it writes at load, finds no image by its
// config digest, and its import needs every layer in the archive. There
// Load sends every layer, starts no early load, and takes the image for
// the snapshot when its layers are the snapshot's diffIDs and the config
// fields inspect shows are the snapshot's (isSnapshot); the base image's
// config is found through its manifest or index kept from its save, or
// among the configs the store's snapshots name (annotatedConfig). The
// container's upper directory is not in its inspect there, so the change
// list comes from the daemon and the bottle is read through tar.
//
// A commit that loads its snapshot and reads the bottle on the host
// starts the load early (earlyLoad): the uncompressed layer goes to the
// daemon as the pipeline hashes and compresses it (a snapshot.LayerTee),
// so the daemon spools it meanwhile and has no gzip to read. A
// docker-archive entry needs its size up front: a dry run of the same
// pipeline over the files' headers alone (fstatat and xattrs, no file
// opened) plans it; the config and manifest.json come last, once the
// snapshot is stored, since the daemon reads manifest.json only after it
// has spooled the whole archive. A layer that does not come out at the
// planned size (the bottle changed meanwhile), another base, or a
// failure abandons the early load before manifest.json: the daemon keeps
// nothing, and Load sends the snapshot from the store as above. The
// daemon checks the layer's diffID and the image ID against the stored
// config, so what it loads is the stored snapshot. On the bench bottle
// (1.1 GB, 160 MB changed) of a saturated 2-core machine, the load then
// ended 5.7 s (median) after the snapshot was stored, where the daemon's
// own load of the same diff layer took 14.8 s; the snapshot itself
// takes longer meanwhile (the daemon spools the layer while bb
// compresses it, and the plan costs a pass over the changed paths'
// metadata, 0.3 s of CPU).
package docker
