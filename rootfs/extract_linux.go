package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"
)

// chmodAt changes the mode of base in pfd without following a symlink:
// fchmodat2 (Linux 6.6), else through an O_PATH descriptor of the node
// itself and /proc/self/fd.
func chmodAt(pfd int, base string, mode fs.FileMode) error {
	m := unixMode(mode)
	err := unix.Fchmodat(pfd, base, m, unix.AT_SYMLINK_NOFOLLOW)
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil // symlinks have no mode of their own
	}
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), m)
}

// mknodAt creates the device node or FIFO base in pfd.
func mknodAt(pfd int, base string, mode uint32, dev uint64) error {
	return unix.Mknodat(pfd, base, mode, int(dev))
}

// setFdTimes sets atime and mtime of the open file fd itself.
func setFdTimes(fd int, t time.Time) error { return setTimes(fd, "", t, unix.AT_EMPTY_PATH) }
