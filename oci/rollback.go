package oci

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// Discard is the rollback of writes that will not be tagged: it removes
// those of blobs that this process's writers created (Writer.Created),
// that no writer reused since (a reuse touches the blob) and that no
// entry of index.json reaches, all under the store's lock. Blobs that
// were already in the store, or that another writer took up in the
// meantime, stay. It runs to the end even when ctx is cancelled (a
// Ctrl-C is when a rollback is needed most).
func (s *Store) Discard(ctx context.Context, blobs []v1.Hash) error {
	ctx = context.WithoutCancel(ctx)
	cands := map[v1.Hash]time.Time{}
	s.sh.mu.Lock()
	for _, h := range blobs {
		if t, ok := s.sh.created[h]; ok {
			cands[h] = t
		}
	}
	s.sh.mu.Unlock()
	if len(cands) == 0 {
		return nil
	}
	return s.lock(unix.LOCK_EX, func() error {
		keep, err := s.reachable(ctx)
		if err != nil {
			return fmt.Errorf("rolling back: %w", err)
		}
		for h, mtime := range cands {
			if keep[h] {
				continue
			}
			p := s.BlobPath(h)
			fi, err := os.Lstat(p)
			if err != nil {
				s.forgetCreated(h)
				continue
			}
			if !fi.ModTime().Equal(mtime) {
				continue // reused since: not ours alone any more
			}
			if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("rolling back: removing blob %s: %w", h, err)
			}
			s.forgetCreated(h)
		}
		return nil
	})
}

// Track returns a view of s that records every blob written through it
// that was not in the store before, and that record. A failed operation
// calls Added.Rollback; a successful one drops the record.
func (s *Store) Track() (*Store, *Added) {
	a := &Added{s: s}
	v := *s
	v.rec = a
	return &v, a
}

// Added is the set of blobs a tracked view of the store created.
type Added struct {
	s     *Store
	mu    sync.Mutex
	blobs []v1.Hash
}

func (a *Added) add(h v1.Hash) {
	a.mu.Lock()
	a.blobs = append(a.blobs, h)
	a.mu.Unlock()
}

// Blobs returns the blobs recorded so far.
func (a *Added) Blobs() []v1.Hash {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]v1.Hash(nil), a.blobs...)
}

// Rollback removes the recorded blobs (see Store.Discard).
func (a *Added) Rollback(ctx context.Context) error {
	return a.s.Discard(ctx, a.Blobs())
}

// recordCreated remembers that this process created blob h with mtime.
// Entries older than GCGrace are dropped on the way (GC may have removed
// those blobs; a rollback that late is not one), so the map stays small in
// a long-running bb serve.
func (s *Store) recordCreated(h v1.Hash, mtime time.Time) {
	if s.rec != nil {
		s.rec.add(h)
	}
	s.sh.mu.Lock()
	defer s.sh.mu.Unlock()
	if len(s.sh.created) >= 1024 {
		old := time.Now().Add(-GCGrace)
		for k, t := range s.sh.created {
			if t.Before(old) {
				delete(s.sh.created, k)
			}
		}
	}
	s.sh.created[h] = mtime
}

func (s *Store) forgetCreated(h v1.Hash) {
	s.sh.mu.Lock()
	delete(s.sh.created, h)
	s.sh.mu.Unlock()
}
