package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// Modes of bb's own files: private to the user bb runs as, whatever the
// umask. Blobs are read-only: nothing rewrites them in place.
const (
	DirMode  os.FileMode = 0o700
	FileMode os.FileMode = 0o600
	BlobMode os.FileMode = 0o400
)

// MkdirPrivate creates dir (and missing parents) with mode 0700, and
// tightens dir itself to 0700 if it exists with group or other bits,
// saying so on log.
func MkdirPrivate(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, DirMode); err != nil {
		return err
	}
	return tighten(dir, DirMode, log)
}

// TightenFile removes the group and other bits of the file at path if it
// has any, saying so on log. A missing file is not an error.
func TightenFile(path string, log *slog.Logger) error {
	err := tighten(path, 0, log)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// tighten chmods path to want (0: its mode without group and other bits)
// when it grants anything to group or others. Symlinks are left alone.
func tighten(path string, want os.FileMode, log *slog.Logger) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	cur := fi.Mode().Perm()
	if cur&0o077 == 0 && (want == 0 || cur == want) {
		return nil
	}
	if want == 0 {
		want = cur &^ 0o077
	}
	if err := os.Chmod(path, want); err != nil {
		return fmt.Errorf("making %s private: %w", path, err)
	}
	if log != nil {
		log.Warn("made private: other users could read it", "path", path, "was", fmt.Sprintf("%#o", cur), "now", fmt.Sprintf("%#o", want))
	}
	return nil
}
