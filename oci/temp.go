package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// TempGrace is how old a temporary file in the store must be before it
// counts as the leftover of a killed write: a live write keeps its file's
// time fresh.
const TempGrace = GCGrace

// sweepOnce removes stale temporary files the first time this opened
// store writes (cheap: two directory listings).
func (s *Store) sweepOnce() {
	s.sh.cleaned.Do(func() {
		removed, err := s.RemoveStaleTemps(TempGrace)
		if err != nil {
			s.log.Warn("removing stale temporary files", "store", s.root, "err", err)
		}
		if len(removed) > 0 {
			s.log.Info("removed temporary files of killed writes", "store", s.root, "files", len(removed))
		}
	})
}

// RemoveStaleTemps removes the store's temporary files older than grace:
// ingest/* (blobs being written) and .NAME.tmp-* files of atomic rewrites
// (WriteFileAtomic) in the store's root and its subdirectories other
// than blobs/. It returns the paths removed.
func (s *Store) RemoveStaleTemps(grace time.Duration) ([]string, error) {
	temps, err := s.tempFiles()
	if err != nil {
		return nil, err
	}
	before := time.Now().Add(-grace)
	var removed []string
	for _, p := range temps {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(before) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("removing stale temporary file %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// tempFiles lists the store's temporary files: everything in ingest/,
// and the .NAME.tmp-* files of atomic rewrites in the other directories
// (blobs/ holds none).
func (s *Store) tempFiles() ([]string, error) {
	var out []string
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if p == filepath.Join(s.root, "blobs") {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(p) == filepath.Join(s.root, ingestDir) || isTempName(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing temporary files of %s: %w", s.root, err)
	}
	return out, nil
}

// isTempName reports whether name is a temporary file of an atomic
// rewrite (WriteFileAtomic, an export).
func isTempName(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}
