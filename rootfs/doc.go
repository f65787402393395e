// Package rootfs extracts image layers into a directory, safely: every
// file operation goes through an os.Root, so no entry (a "../" name, an
// absolute path, a path through a symlink) can write outside the target.
// It applies OCI whiteouts, keeps numeric owners, modes (setuid
// included), hard links, symlinks, xattrs and mtimes.
//
// bb uses it for the dir backend's resume and for the stand-in runtimes
// used in tests.
package rootfs
