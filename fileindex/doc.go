// Package fileindex lists a bottle's root filesystem and compares two
// listings, so a commit streams only what changed since the last one.
//
// A listing is a header line followed by one record per entry:
//
//	bb-fileindex v1 SEC.NSEC\n
//	TYPE MODE UID GID SIZE MTIME CTIME INO NLINK\0PATH\0LINK\0 ...
//
// TYPE is find's %y (f d l b c p s), MODE the permission bits in octal
// (with setuid, setgid, sticky), MTIME and CTIME are seconds with a
// fraction, PATH is relative to the root ("" for the root itself, which is
// skipped) and LINK is a symlink's target. A listing comes from the
// bottle: a path with an empty, "." or ".." component is refused, and so
// is a header line or a record field longer than 64 KiB. SEC.NSEC is
// when the listing started, on the clock of the filesystem it lists. GNU
// find prints this format in the bottle (FindScript); Walk prints it on
// the host. The listing of a commit, gzipped, is the file index stored
// with the snapshot.
//
// What detects a rewrite in place: an entry counts as changed when its
// type, mode, owner, size, mtime, symlink target, inode number or ctime
// differ. ctime is set by the kernel on every write, chmod, chown, rename,
// link count or xattr change, and cannot be set by a process (short of
// changing the system clock), so a rewrite that restores size and mtime
// (touch -d, rsync -t, cp -p) is still seen. Limits: timestamps have the
// kernel's coarse granularity (a few ms), so an entry whose ctime lies
// within RacyWindow before the listing started is treated as changed at
// the next commit ("racy", as git does for its index); a filesystem whose
// ctime does not move on write (some FUSE and network filesystems) hides
// rewrites that keep size and mtime; and after a bottle is booted again
// from a snapshot every inode and ctime is new, so the first commit after
// a resume streams the whole tree (bb then makes a full snapshot).
//
// Diff holds 32 bytes per entry of the older listing in memory (a keyed
// 64-bit hash of the path, one of the attributes, the inode and state)
// and a lookup table of under 2 bytes per entry, plus the paths that
// changed; it reads the older listing twice, and a third time only when
// the newer one lacks some of its entries (deletions): memory does not
// grow with path lengths, and a million entries fit in ~34 MiB.
package fileindex
