package rootfs

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// chmodAt changes the mode of base in pfd without following a symlink:
// macOS's fchmodat takes AT_SYMLINK_NOFOLLOW (a symlink's own mode
// changes, as lchmod does).
func chmodAt(pfd int, base string, mode fs.FileMode) error {
	return unix.Fchmodat(pfd, base, unixMode(mode), unix.AT_SYMLINK_NOFOLLOW)
}

// mknodAt does not create device nodes or FIFOs on macOS: the entry is
// skipped with a warning, as where the kernel does not permit it.
func mknodAt(pfd int, base string, mode uint32, dev uint64) error {
	return fmt.Errorf("device nodes and FIFOs of a Linux tree are not made on macOS: %w", unix.EPERM)
}

// setFdTimes sets atime and mtime of the open file fd itself (to the
// microsecond: macOS has no utimensat on a descriptor).
func setFdTimes(fd int, t time.Time) error {
	tv := unix.NsecToTimeval(t.UnixNano())
	if t.IsZero() {
		tv = unix.NsecToTimeval(0)
	}
	return unix.Futimes(fd, []unix.Timeval{tv, tv})
}
