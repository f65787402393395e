// Package rootfs extracts image layers into a directory, safely: every
// path is resolved inside the target through an os.Root, and entries are
// made and their metadata set through descriptors and *at calls that do
// not follow a symlink, so no entry (a "../" name, an absolute path, a
// path through a symlink) can write outside the target. It applies OCI
// whiteouts, keeps numeric owners, modes (setuid included), hard links,
// symlinks, xattrs and mtimes. Each entry is checked (name, whiteout,
// type), then what is in its place removed, then it is created.
//
// HasDotDot is the check of a tar name every reader of bottle tar
// streams shares (this extractor, snapshot.Filter, the docker backend).
//
// bb uses it for the dir backend's resume and for the stand-in runtimes
// used in tests.
package rootfs
