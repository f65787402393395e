package oci

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// InUseError reports blobs an explicit delete left in place because a
// manifest in index.json still reaches them.
type InUseError struct {
	Digest v1.Hash
	// By are the index.json entries that reach Digest: their tags, or
	// their digests when untagged.
	By []string
}

func (e *InUseError) Error() string {
	by := e.By
	if len(by) > 5 {
		by = append(by[:5:5], fmt.Sprintf("%d more", len(e.By)-5))
	}
	return fmt.Sprintf("%s is still used by %s: delete those first", e.Digest, strings.Join(by, ", "))
}

// Delete is an explicit removal from the store (a registry client's
// DELETE, for example), all under the index lock: it runs edit on
// index.json (nil: no change), then removes each of blobs, at once rather
// than after GC's grace period, and writes the edited index. If an entry
// of the edited index still reaches one of blobs, nothing changes and the
// error is an *InUseError. It returns the blobs it removed; a blob not in
// the store is skipped.
func (s *Store) Delete(ctx context.Context, edit func(*v1.IndexManifest) error, blobs []v1.Hash) ([]v1.Hash, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, h := range blobs {
		if err := validHash(h); err != nil {
			return nil, err
		}
	}
	var removed []v1.Hash
	err := s.withLock(func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		if edit != nil {
			if err := edit(idx); err != nil {
				return err
			}
		}
		want := map[v1.Hash]bool{}
		for _, h := range blobs {
			want[h] = true
		}
		users := map[v1.Hash][]string{}
		for _, m := range idx.Manifests {
			keep := map[v1.Hash]bool{}
			if err := s.mark(ctx, m, keep); err != nil {
				return err
			}
			name := m.Annotations[RefNameAnnotation]
			if name == "" {
				name = m.Digest.String()
			}
			for h := range keep {
				if want[h] {
					users[h] = append(users[h], name)
				}
			}
		}
		for _, h := range blobs {
			if by := users[h]; len(by) > 0 {
				sort.Strings(by)
				return &InUseError{Digest: h, By: by}
			}
		}
		if edit != nil {
			if err := s.writeIndex(idx); err != nil {
				return err
			}
		}
		for _, h := range blobs {
			err := os.Remove(s.BlobPath(h))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("removing blob %s: %w", h, err)
			}
			removed = append(removed, h)
		}
		return nil
	})
	return removed, err
}
