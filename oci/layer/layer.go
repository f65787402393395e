package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Defaults for Write. Level 1 because compression is CPU-bound on the
// small machines bottles run on: it is 2× faster than level 6 for ~10%
// more bytes. Block size and count are pgzip's: 1 MiB blocks, two per core,
// so memory is bounded by a few MiB per core.
const (
	DefaultLevel     = pgzip.BestSpeed
	DefaultBlockSize = 1 << 20
)

// Options tune Write. The zero value means the defaults.
type Options struct {
	// Level is the gzip level (1-9); 0 means DefaultLevel.
	Level int
	// Concurrency is the number of compressing goroutines; 0 means GOMAXPROCS.
	Concurrency int
	// Progress, if set, is called with the number of uncompressed bytes
	// consumed so far, from the writing goroutine.
	Progress func(n int64)
	// Compression is Gzip (the default, "") or Zstd. zstd compresses about
	// twice as fast as gzip -1 on the same cores, to a smaller blob, but
	// Docker before 23 and other older readers cannot read it (bb export
	// --compression gzip converts).
	Compression Compression
	// Tee, if set, receives the uncompressed tar as it is hashed (its
	// sha256 is the diffID). A failed write only ends the copies to it.
	Tee io.Writer
}

// Layer is a compressed layer Write added to (or found in) an oci.Store.
type Layer struct {
	digest v1.Hash
	diffID v1.Hash
	size   int64
	mt     types.MediaType
	// created is true when Write added the blob (it was not in the store).
	created bool
}

// Created reports whether Write added a new blob to the store.
func (l *Layer) Created() bool { return l.created }

// Digest returns the sha256 of the compressed blob.
func (l *Layer) Digest() (v1.Hash, error) { return l.digest, nil }

// DiffID returns the sha256 of the uncompressed tar.
func (l *Layer) DiffID() (v1.Hash, error) { return l.diffID, nil }

// Size returns the compressed size.
func (l *Layer) Size() (int64, error) { return l.size, nil }

// Descriptor returns the layer's descriptor.
func (l *Layer) Descriptor() v1.Descriptor {
	return v1.Descriptor{MediaType: l.mt, Digest: l.digest, Size: l.size}
}

// Write reads the tar stream r to EOF, compresses it into the store and
// returns the layer. The diffID, digest and size are computed in the same
// pass. On any error (including r's) nothing is left in the store.
func Write(ctx context.Context, s *oci.Store, r io.Reader, opts Options) (*Layer, error) {
	level := opts.Level
	if level == 0 {
		level = DefaultLevel
	}
	conc := opts.Concurrency
	if conc <= 0 {
		conc = runtime.GOMAXPROCS(0)
	}
	w, err := s.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	var zw io.WriteCloser
	mt := types.OCILayer
	switch opts.Compression {
	case "", Gzip:
		gz, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, fmt.Errorf("gzip level %d: %w", level, err)
		}
		if err := gz.SetConcurrency(DefaultBlockSize, 2*conc); err != nil {
			return nil, err
		}
		zw = gz
	case Zstd:
		zl := zstd.SpeedFastest
		if opts.Level > 3 {
			zl = zstd.SpeedDefault
		}
		zs, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zl), zstd.WithEncoderConcurrency(conc))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		zw, mt = zs, types.OCILayerZStd
	default:
		return nil, fmt.Errorf("unknown layer compression %q (gzip or zstd)", opts.Compression)
	}
	diff := sha256.New()
	dst := io.MultiWriter(diff, zw)
	if opts.Tee != nil {
		dst = io.MultiWriter(diff, zw, &iox.TeeWriter{W: opts.Tee})
	}
	n, err := copyCtx(ctx, dst, r, opts.Progress)
	if err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compressing layer: %w", err)
	}
	digest, size, err := w.Commit(ctx, v1.Hash{}, -1)
	if err != nil {
		return nil, err
	}
	l := &Layer{digest: digest, diffID: sum(diff), size: size, mt: mt, created: w.Created()}
	s.RecordLayer(oci.StoredLayer{Digest: digest, Size: size, MediaType: mt, DiffID: l.diffID, TarSize: n})
	return l, nil
}

// ReadError marks a failure of the tar stream itself (as opposed to the
// compression or the store).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading tar stream: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

func copyCtx(ctx context.Context, dst io.Writer, src io.Reader, progress func(int64)) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return n, fmt.Errorf("writing layer: %w", werr)
			}
			n += int64(k)
			if progress != nil {
				progress(n)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return n, nil
		}
		if rerr != nil {
			return n, &ReadError{Err: rerr}
		}
	}
}

func sum(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}
