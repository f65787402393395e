package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bb/internal/iox"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

const (
	ingestDir     = "ingest"
	indexFile     = "index.json"
	layoutFile    = "oci-layout"
	lockFile      = "index.json.lock"
	layoutVersion = `{"imageLayoutVersion":"1.0.0"}`
)

// Store is a local OCI image layout used as a content-addressed store.
// Its methods are safe for concurrent use by several goroutines and by
// several processes on the same host.
type Store struct {
	root string
	log  *slog.Logger
	sh   *shared
	// rec, when set, records the blobs this view of the store adds
	// (see Track).
	rec      *Added
	noRepair bool
}

// shared is the in-process state every view of one opened store shares.
type shared struct {
	mu sync.Mutex
	// created maps each blob this process added to the modification time
	// it gave the file: a later reuse changes it (see Discard).
	created map[v1.Hash]time.Time
	// cleaned makes the stale temp-file sweep run once per Open.
	cleaned sync.Once
	// layers maps diffIDs to layer blobs (see LayerByDiffID).
	layers layerIndex
}

// Option tunes Open.
type Option func(*Store)

// WithLogger sets where the store reports what it repaired on its own
// (permissions it tightened, stale temp files it removed). The default
// discards.
func WithLogger(l *slog.Logger) Option {
	return func(s *Store) {
		if l != nil {
			s.log = l
		}
	}
}

// WithoutRepair makes Open leave modes as they are (bb doctor reports
// them instead).
func WithoutRepair() Option {
	return func(s *Store) { s.noRepair = true }
}

// Open opens the store at root, creating an empty image layout there if
// none exists. The store's directories are made private (0700) and its
// own files 0600 whatever the umask; looser existing ones are tightened
// with a notice to the logger.
func Open(root string, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening store %q: %w", root, err)
	}
	s := &Store{root: abs, log: slog.New(slog.DiscardHandler), sh: &shared{created: map[v1.Hash]time.Time{}}}
	for _, o := range opts {
		o(s)
	}
	for _, d := range []string{abs, filepath.Join(abs, "blobs"), filepath.Join(abs, "blobs", "sha256"), filepath.Join(abs, ingestDir)} {
		if err := os.MkdirAll(d, DirMode); err != nil {
			return nil, fmt.Errorf("creating store directory %q: %w (set --store or BB_STORE to a writable directory)", d, err)
		}
		s.repair(d, DirMode)
	}
	if _, err := os.Stat(filepath.Join(abs, layoutFile)); errors.Is(err, os.ErrNotExist) {
		if err := writeFileAtomic(filepath.Join(abs, layoutFile), []byte(layoutVersion), FileMode); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(abs, indexFile)); errors.Is(err, os.ErrNotExist) {
		err := s.withLock(func() error {
			if _, err := os.Stat(filepath.Join(abs, indexFile)); err == nil {
				return nil
			}
			return s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex})
		})
		if err != nil {
			return nil, err
		}
	}
	for _, f := range []string{layoutFile, indexFile, lockFile} {
		s.repair(filepath.Join(abs, f), 0)
	}
	return s, nil
}

// repair tightens the mode of one of the store's own paths (see tighten)
// unless WithoutRepair was given. A failure (a store on a filesystem
// without modes, a directory owned by someone else) is a warning: the
// store still works.
func (s *Store) repair(p string, want os.FileMode) {
	if s.noRepair {
		return
	}
	if err := tighten(p, want, s.log); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("could not make the store private", "path", p, "err", err)
	}
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// BlobPath returns where the blob with digest h lives (it may not exist).
func (s *Store) BlobPath(h v1.Hash) string {
	return filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)
}

// Stat returns the size of blob h, or ErrNotFound.
func (s *Store) Stat(ctx context.Context, h v1.Hash) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := validHash(h); err != nil {
		return 0, err
	}
	fi, err := os.Stat(s.BlobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("stat blob %s: %w", h, err)
	}
	return fi.Size(), nil
}

// Blob opens blob h for reading. The caller closes it. The returned file
// supports Seek and ReadAt, so it can serve Range requests.
func (s *Store) Blob(ctx context.Context, h v1.Hash) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validHash(h); err != nil {
		return nil, err
	}
	f, err := os.Open(s.BlobPath(h))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", h, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("opening blob %s: %w", h, err)
	}
	return f, nil
}

// ReadBlob reads a small blob (a manifest or config) whole, refusing blobs
// larger than limit bytes, and checks that it hashes to h.
func (s *Store) ReadBlob(ctx context.Context, h v1.Hash, limit int64) ([]byte, error) {
	f, err := s.Blob(ctx, h)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading blob %s: %w", h, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", h, limit)
	}
	hh := newHash(h.Algorithm)
	hh.Write(b)
	if got := hex.EncodeToString(hh.Sum(nil)); got != h.Hex {
		return nil, fmt.Errorf("blob %s hashes to %s:%s: the store is damaged (bb doctor)", h, h.Algorithm, got)
	}
	return b, nil
}

// Writer writes one blob into the store. Bytes go to a temporary file in
// the store while they are hashed and counted; Commit verifies them and
// renames the file to its digest. Close without Commit discards them.
type Writer struct {
	s         *Store
	f         *os.File
	alg       string
	h         hash.Hash
	n         int64
	committed bool
	created   bool
}

// NewWriter starts a new blob, hashed with sha256 (Commit rehashes the
// file when it is asked for another algorithm).
func (s *Store) NewWriter(ctx context.Context) (*Writer, error) {
	return s.NewWriterAlgorithm(ctx, "sha256")
}

// NewWriterAlgorithm starts a new blob hashed with algorithm alg (one of
// Algorithms) while it is written.
func (s *Store) NewWriterAlgorithm(ctx context.Context, alg string) (*Writer, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h := newHash(alg)
	if h == nil {
		return nil, fmt.Errorf("unsupported digest algorithm %q: use sha256 or sha512", alg)
	}
	s.sweepOnce()
	f, err := os.CreateTemp(filepath.Join(s.root, ingestDir), "blob-*")
	if err != nil {
		return nil, fmt.Errorf("creating temp blob in store %s: %w", s.root, err)
	}
	return &Writer{s: s, f: f, alg: alg, h: h}, nil
}

// Algorithms are the digest algorithms the store holds, each in its own
// directory under blobs/ (as the OCI image layout allows).
var Algorithms = []string{"sha256", "sha512"}

// newHash returns a hash of algorithm alg, nil if the store does not
// support alg.
func newHash(alg string) hash.Hash {
	switch alg {
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Size returns the number of bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Digest returns the digest of the bytes written so far, in the
// writer's algorithm.
func (w *Writer) Digest() v1.Hash {
	return v1.Hash{Algorithm: w.alg, Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// rehash switches the writer to algorithm alg by hashing the bytes
// written so far again (the digest to verify was not known when the blob
// started: a registry upload learns it at the end).
func (w *Writer) rehash(alg string) error {
	h := newHash(alg)
	if h == nil {
		return fmt.Errorf("unsupported digest algorithm %q: use sha256 or sha512", alg)
	}
	if _, err := io.Copy(h, io.NewSectionReader(w.f, 0, w.n)); err != nil {
		return fmt.Errorf("hashing blob with %s: %w", alg, err)
	}
	w.alg, w.h = alg, h
	return nil
}

// Commit verifies the blob against want (zero Hash: accept any) and
// wantSize (negative: accept any), syncs it and moves it into place. If the
// store already holds the digest, the temporary file is dropped.
func (w *Writer) Commit(ctx context.Context, want v1.Hash, wantSize int64) (v1.Hash, int64, error) {
	if w.committed {
		return v1.Hash{}, 0, errors.New("blob writer already committed")
	}
	defer w.Close()
	if err := ctx.Err(); err != nil {
		return v1.Hash{}, 0, err
	}
	if want.Algorithm != "" && want.Algorithm != w.alg {
		if err := w.rehash(want.Algorithm); err != nil {
			return v1.Hash{}, 0, err
		}
	}
	got := w.Digest()
	if (want != v1.Hash{} && want != got) || (wantSize >= 0 && wantSize != w.n) {
		return v1.Hash{}, 0, &DigestMismatchError{WantDigest: want, GotDigest: got, WantSize: wantSize, GotSize: w.n}
	}
	if err := w.f.Sync(); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("syncing blob %s: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("closing blob %s: %w", got, err)
	}
	dst := w.s.BlobPath(got)
	if _, ok := w.s.reuse(got, w.n); ok {
		w.committed = true
		_ = os.Remove(w.f.Name())
		return got, w.n, nil
	}
	// The blob gets its own mtime, recorded: a writer that reuses it later
	// changes it, so a rollback of this write can tell (see Discard).
	mtime := time.Now()
	if err := os.Chmod(w.f.Name(), BlobMode); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("chmod blob %s: %w", got, err)
	}
	if err := os.Chtimes(w.f.Name(), mtime, mtime); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("setting the time of blob %s: %w", got, err)
	}
	if got.Algorithm != "sha256" {
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return v1.Hash{}, 0, fmt.Errorf("creating blob directory for %s: %w", got, err)
		}
	}
	placed, err := renameNoReplace(w.f.Name(), dst)
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("moving blob %s into store: %w", got, err)
	}
	if !placed {
		// Another writer put it there first, or a damaged copy of another
		// size is there: reuse the first, replace the second.
		if _, ok := w.s.reuse(got, w.n); ok {
			w.committed = true
			_ = os.Remove(w.f.Name())
			return got, w.n, nil
		}
		if err := os.Rename(w.f.Name(), dst); err != nil {
			return v1.Hash{}, 0, fmt.Errorf("moving blob %s into store: %w", got, err)
		}
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("syncing %s: %w", filepath.Dir(dst), err)
	}
	w.committed = true
	w.created = true
	w.s.recordCreated(got, mtime)
	return got, w.n, nil
}

// Created reports whether Commit added a new blob (rather than finding
// the digest already in the store).
func (w *Writer) Created() bool { return w.created }

// Close discards the blob unless it was committed.
func (w *Writer) Close() error {
	_ = w.f.Close()
	if !w.committed {
		w.committed = true // Close is idempotent.
		if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// Ingest copies r into the store, verifying it against want and wantSize
// (see Writer.Commit). When wantSize is known, at most wantSize+1 bytes are
// read, so an over-long stream is refused without reading it whole.
func (s *Store) Ingest(ctx context.Context, r io.Reader, want v1.Hash, wantSize int64) (v1.Hash, int64, error) {
	if want != (v1.Hash{}) {
		if err := validHash(want); err != nil {
			return v1.Hash{}, 0, err
		}
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, 0, err
		}
		if n, ok := s.reuse(want, wantSize); ok {
			return want, n, nil
		}
	}
	alg := want.Algorithm
	if alg == "" {
		alg = "sha256"
	}
	w, err := s.NewWriterAlgorithm(ctx, alg)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer w.Close()
	if wantSize >= 0 {
		r = io.LimitReader(r, wantSize+1)
	}
	if _, err := io.Copy(w, iox.ContextReader(ctx, r)); err != nil {
		return v1.Hash{}, 0, fmt.Errorf("writing blob into store: %w", err)
	}
	return w.Commit(ctx, want, wantSize)
}

// PutBytes stores b and returns its descriptor with the given media type.
func (s *Store) PutBytes(ctx context.Context, mt types.MediaType, b []byte) (v1.Descriptor, error) {
	h, n, err := s.Ingest(ctx, bytes.NewReader(b), v1.Hash{}, int64(len(b)))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: n}, nil
}

// Index returns a copy of the store's index.json.
func (s *Store) Index(ctx context.Context) (*v1.IndexManifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.readIndex()
}

// UpdateIndex runs fn on index.json under the store's exclusive lock and
// writes the result atomically. If fn fails, index.json is unchanged. fn
// may read blobs (Stat, ReadBlob, Complete) but must not write any: a
// write waits for the lock fn holds.
func (s *Store) UpdateIndex(ctx context.Context, fn func(*v1.IndexManifest) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.sweepOnce()
	return s.withLock(func() error {
		idx, err := s.readIndex()
		if err != nil {
			return err
		}
		if err := fn(idx); err != nil {
			return err
		}
		return s.writeIndex(idx)
	})
}

// Tag points name at desc, replacing the entry that carried name before.
func (s *Store) Tag(ctx context.Context, name string, desc v1.Descriptor) error {
	if err := ValidTag(name); err != nil {
		return err
	}
	if _, err := s.Stat(ctx, desc.Digest); err != nil {
		return fmt.Errorf("tagging %s as %q: %w", desc.Digest, name, err)
	}
	return s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.Annotations[RefNameAnnotation] == name {
				continue
			}
			kept = append(kept, m)
		}
		d := desc
		d.Annotations = cloneMap(desc.Annotations)
		d.Annotations[RefNameAnnotation] = name
		idx.Manifests = append(kept, d)
		return nil
	})
}

// Untag removes name from the index. It reports ErrNotFound if no entry
// carries it.
func (s *Store) Untag(ctx context.Context, name string) error {
	return s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		kept := idx.Manifests[:0]
		found := false
		for _, m := range idx.Manifests {
			if m.Annotations[RefNameAnnotation] == name {
				found = true
				continue
			}
			kept = append(kept, m)
		}
		if !found {
			return fmt.Errorf("tag %q: %w", name, ErrNotFound)
		}
		idx.Manifests = kept
		return nil
	})
}

// Resolve finds the descriptor tagged name, or the manifest whose digest
// is name ("sha256:..."), in index.json.
func (s *Store) Resolve(ctx context.Context, name string) (v1.Descriptor, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, m := range idx.Manifests {
		if m.Annotations[RefNameAnnotation] == name || m.Digest.String() == name {
			return m, nil
		}
	}
	if strings.HasPrefix(name, "sha256:") {
		if h, err := v1.NewHash(name); err == nil {
			if n, err := s.Stat(ctx, h); err == nil {
				return v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: h, Size: n}, nil
			}
		}
	}
	return v1.Descriptor{}, fmt.Errorf("%q: %w (see bb list)", name, ErrNotFound)
}

// GCGrace is how recently a blob must have been written or reused for GC
// to leave it alone: a concurrent commit writes its blobs before it tags
// its manifest.
const GCGrace = time.Hour

// GC removes blobs that no manifest in index.json reaches and that were
// not written or reused within GCGrace, temporary files (of killed
// writes) older than GCGrace, and the layer index file older versions
// kept in the store root (bb-layers.json). It returns the digests
// removed.
func (s *Store) GC(ctx context.Context) ([]v1.Hash, error) {
	if _, err := s.RemoveStaleTemps(GCGrace); err != nil {
		return nil, err
	}
	before := time.Now().Add(-GCGrace)
	var removed []v1.Hash
	err := s.withLock(func() error {
		if err := s.removeLegacyLayerIndex(); err != nil {
			return err
		}
		keep, err := s.reachable(ctx)
		if err != nil {
			return err
		}
		for _, alg := range Algorithms {
			dir := filepath.Join(s.root, "blobs", alg)
			ents, err := os.ReadDir(dir)
			if errors.Is(err, os.ErrNotExist) && alg != "sha256" {
				continue
			}
			if err != nil {
				return fmt.Errorf("listing blobs: %w", err)
			}
			for _, e := range ents {
				h := v1.Hash{Algorithm: alg, Hex: e.Name()}
				if keep[h] {
					continue
				}
				if fi, err := e.Info(); err != nil || fi.ModTime().After(before) {
					continue
				}
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("removing blob %s: %w", h, err)
				}
				s.forgetCreated(h)
				removed = append(removed, h)
			}
		}
		return nil
	})
	return removed, err
}

// reachable returns every blob a manifest in index.json reaches. Call it
// under the lock.
func (s *Store) reachable(ctx context.Context) (map[v1.Hash]bool, error) {
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	keep := map[v1.Hash]bool{}
	for _, m := range idx.Manifests {
		if err := s.mark(ctx, m, keep); err != nil {
			return nil, err
		}
	}
	return keep, nil
}

// mark records desc and everything it references.
func (s *Store) mark(ctx context.Context, desc v1.Descriptor, keep map[v1.Hash]bool) error {
	keep[desc.Digest] = true
	switch desc.MediaType {
	case types.OCIManifestSchema1, types.DockerManifestSchema2:
		m, err := s.Manifest(ctx, desc)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		keep[m.Config.Digest] = true
		for _, l := range m.Layers {
			keep[l.Digest] = true
		}
		if h, err := v1.NewHash(m.Annotations[BaseConfigAnnotation]); err == nil && validHash(h) == nil {
			keep[h] = true
		}
	case types.OCIImageIndex, types.DockerManifestList:
		im, err := s.indexManifest(ctx, desc.Digest)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, c := range im.Manifests {
			if err := s.mark(ctx, c, keep); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(s.root, indexFile))
	if err != nil {
		return nil, fmt.Errorf("reading store index: %w", err)
	}
	defer f.Close()
	idx, err := v1.ParseIndexManifest(io.LimitReader(f, MaxIndexSize))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(s.root, indexFile), err)
	}
	return idx, nil
}

func (s *Store) writeIndex(idx *v1.IndexManifest) error {
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, indexFile), b, FileMode)
}

func (s *Store) withLock(fn func() error) error {
	return s.lock(unix.LOCK_EX, fn)
}

// lock runs fn holding the store's lock in mode (unix.LOCK_EX for index
// updates, GC and rollback; unix.LOCK_SH for reusing a blob, so that no
// rollback or GC removes it between the check and the touch).
func (s *Store) lock(mode int, fn func() error) error {
	f, err := os.OpenFile(filepath.Join(s.root, lockFile), os.O_CREATE|os.O_RDWR, FileMode)
	if err != nil {
		return fmt.Errorf("locking store index: %w", err)
	}
	defer f.Close()
	for {
		err = unix.Flock(int(f.Fd()), mode)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking store index: %w", err)
	}
	defer unix.Flock(int(f.Fd()), unix.LOCK_UN) //nolint:errcheck
	return fn()
}

// Reuse marks blob h, which the caller found in the store and means to
// reference, as used now, and returns its size; false if it is not there
// (with size, if size >= 0). Once it returns true, neither GC nor another
// writer's rollback removes the blob for GCGrace. Callers that check a
// blob with Stat and then rely on it use this instead of touching the
// file themselves.
func (s *Store) Reuse(h v1.Hash, size int64) (int64, bool) {
	if validHash(h) != nil {
		return 0, false
	}
	return s.reuse(h, size)
}

// reuse marks blob h as used now, for GC's grace period and for the
// rollback of the writer that created it, and returns its size, under a
// shared lock: once it returns true, the blob stays at least GCGrace.
// size < 0 accepts any size.
func (s *Store) reuse(h v1.Hash, size int64) (int64, bool) {
	var n int64
	ok := false
	_ = s.lock(unix.LOCK_SH, func() error {
		n, ok = s.touch(h, size)
		return nil
	})
	return n, ok
}

// touch is reuse for a caller that holds the store's lock.
func (s *Store) touch(h v1.Hash, size int64) (int64, bool) {
	p := s.BlobPath(h)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || (size >= 0 && fi.Size() != size) {
		return 0, false
	}
	now := time.Now()
	if err := os.Chtimes(p, now, now); err != nil {
		return 0, false
	}
	return fi.Size(), true
}

// writeFileAtomic writes b to path through a temp file in the same
// directory and a rename, so readers see the old or the new file whole.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	return WriteFileAtomic(path, b, mode)
}

// WriteFileAtomic writes b to path through a synced temp file in the same
// directory and a rename, so readers see the old or the new content whole.
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("writing %s: syncing %s: %w", path, dir, err)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return err
	}
	return nil
}

func validHash(h v1.Hash) error {
	n := map[string]int{"sha256": 64, "sha512": 128}[h.Algorithm]
	if n == 0 {
		return fmt.Errorf("unsupported digest %q: only sha256 and sha512 are supported", h.String())
	}
	if len(h.Hex) != n {
		return fmt.Errorf("invalid digest %q: a %s digest has %d hex digits", h.String(), h.Algorithm, n)
	}
	for _, c := range h.Hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("invalid digest %q", h.String())
		}
	}
	return nil
}

// ValidHash reports whether h is a well-formed sha256 or sha512 digest.
func ValidHash(h v1.Hash) error { return validHash(h) }

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}
