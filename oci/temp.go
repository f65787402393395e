package oci

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
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
// ingest/* (blobs being written) and .*.tmp-* beside index.json and
// oci-layout (atomic rewrites). It returns the paths removed.
func (s *Store) RemoveStaleTemps(grace time.Duration) ([]string, error) {
	removed, err := iox.RemoveStale(filepath.Join(s.root, ingestDir), "", grace)
	if err != nil {
		return removed, err
	}
	for _, f := range []string{indexFile, layoutFile} {
		r, err := iox.RemoveStaleBeside(filepath.Join(s.root, f), grace)
		removed = append(removed, r...)
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// isTempName reports whether name (in the store's root) is one of the
// store's own temporary files.
func isTempName(name string) bool {
	for _, f := range []string{indexFile, layoutFile} {
		if strings.HasPrefix(name, iox.StaleTempPrefix(f)) {
			return true
		}
	}
	return false
}
