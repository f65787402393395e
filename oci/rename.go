package oci

import (
	"errors"
	"io/fs"
	"os"
)

// linkNoReplace is renameNoReplace through a hard link, for systems and
// filesystems without RENAME_NOREPLACE; a filesystem without hard links
// gets a plain rename.
func linkNoReplace(src, dst string) (bool, error) {
	err := os.Link(src, dst)
	switch {
	case err == nil:
		_ = os.Remove(src)
		return true, nil
	case errors.Is(err, fs.ErrExist):
		return false, nil
	}
	if _, serr := os.Lstat(dst); serr == nil {
		return false, nil
	}
	return true, os.Rename(src, dst)
}
