package oci

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// renameNoReplace moves src to dst unless dst exists; it reports whether
// it moved it.
func renameNoReplace(src, dst string) (bool, error) {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		return linkNoReplace(src, dst)
	}
	return false, &os.LinkError{Op: "rename", Old: src, New: dst, Err: err}
}
