package layer

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// Compression is how a layer blob is compressed, as its first bytes say.
type Compression string

// Compressions DiffIDWriter tells apart.
const (
	None Compression = "none"
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// CompressionOf returns the compression a layer of media type mt must
// have, and false for a media type that is not a layer bb reads.
func CompressionOf(mt types.MediaType) (Compression, bool) {
	switch mt {
	case types.OCILayer, types.OCIRestrictedLayer, types.DockerLayer:
		return Gzip, true
	case types.OCILayerZStd:
		return Zstd, true
	case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer, types.DockerUncompressedLayer:
		return None, true
	}
	return "", false
}

// sniff tells the compression from a blob's first bytes.
func sniff(head []byte) Compression {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return Gzip
	case len(head) >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		return Zstd
	}
	return None
}

// MaxZstdWindow bounds the memory a zstd layer may ask its decoder for
// (zstd --long uses 128 MiB; ordinary levels at most 8 MiB).
const MaxZstdWindow = 128 << 20

// DiffIDWriter computes a layer's diffID (the sha256 of its uncompressed
// tar) from the compressed bytes as they are written, in the same pass
// that stores them: a gzip or zstd blob is decompressed by a goroutine
// and hashed, never kept, so memory stays bounded whatever the blob
// expands to. An uncompressed blob's diffID is its digest, which the
// caller already computes: Finish takes it.
//
// Write never fails, so a DiffIDWriter can sit in an io.MultiWriter next
// to the store's writer: a blob that does not decompress is reported by
// Finish (it may not be a layer at all: a config, a manifest).
type DiffIDWriter struct {
	head    []byte
	kind    Compression
	started bool
	pw      *io.PipeWriter
	done    chan result
	res     *result
}

type result struct {
	sum v1.Hash
	n   int64
	err error
}

// NewDiffIDWriter starts a diffID computation.
func NewDiffIDWriter() *DiffIDWriter { return &DiffIDWriter{} }

// Write feeds the next compressed bytes.
func (w *DiffIDWriter) Write(p []byte) (int, error) {
	n := len(p)
	if !w.started {
		need := 4 - len(w.head)
		if len(p) < need {
			w.head = append(w.head, p...)
			return n, nil
		}
		w.head = append(w.head, p[:need]...)
		p = p[need:]
		w.start()
		w.feed(w.head)
	}
	w.feed(p)
	return n, nil
}

func (w *DiffIDWriter) start() {
	w.started = true
	w.kind = sniff(w.head)
	if w.kind == None {
		return
	}
	pr, pw := io.Pipe()
	w.pw = pw
	w.done = make(chan result, 1)
	kind := w.kind
	go func() {
		r := decompress(kind, pr)
		pr.CloseWithError(r.err) // unblocks the writer once decoding stopped
		w.done <- r
	}()
}

func decompress(kind Compression, r io.Reader) result {
	zr, closeFn, err := newReader(kind, r)
	if err != nil {
		return result{err: fmt.Errorf("not %s: %w", kind, err)}
	}
	defer closeFn()
	h := sha256.New()
	n, err := io.Copy(h, zr)
	if err != nil {
		return result{n: n, err: fmt.Errorf("decompressing %s: %w", kind, err)}
	}
	return result{sum: sum(h), n: n}
}

func (w *DiffIDWriter) feed(p []byte) {
	if w.pw == nil || len(p) == 0 {
		return
	}
	// An error means the decoder stopped (bad data, or trailing bytes
	// after the stream): Finish reports it; the rest is ignored.
	if _, err := w.pw.Write(p); err != nil {
		w.pw = nil
	}
}

var errAborted = errors.New("diffID computation aborted")

// Finish ends the computation and returns the blob's compression and
// diffID; digest is the sha256 of all bytes written (the diffID of an
// uncompressed blob). An error says the blob is not a well-formed
// compressed stream of its kind.
func (w *DiffIDWriter) Finish(digest v1.Hash) (Compression, v1.Hash, error) {
	if !w.started {
		w.start()
	}
	if w.kind == None {
		return None, digest, nil
	}
	r := w.wait(nil)
	return w.kind, r.sum, r.err
}

// Close stops a computation that will not be finished (the blob was
// refused); it is a no-op after Finish.
func (w *DiffIDWriter) Close() error {
	if w.started && w.kind != None {
		w.wait(errAborted)
	}
	return nil
}

func (w *DiffIDWriter) wait(abort error) result {
	if w.res != nil {
		return *w.res
	}
	if w.pw != nil {
		if abort != nil {
			w.pw.CloseWithError(abort)
		} else {
			w.pw.Close()
		}
	}
	r := <-w.done
	w.res = &r
	return r
}

// CheckDiffID checks that a layer blob of media type mt, whose bytes gave
// compression got and diffID diff (from a DiffIDWriter, err its error),
// is what its config's diff_id want claims.
func CheckDiffID(mt types.MediaType, got Compression, diff v1.Hash, err error, want v1.Hash) error {
	c, ok := CompressionOf(mt)
	if !ok {
		return fmt.Errorf("media type %q is not a layer bb reads", mt)
	}
	if c != got {
		return fmt.Errorf("its media type %s says %s compression, its bytes are %s", mt, c, got)
	}
	if err != nil {
		return err
	}
	if diff != want {
		return fmt.Errorf("its uncompressed content hashes to %s, its config's diff_id says %s", diff, want)
	}
	return nil
}

// newReader decompresses r as kind (r itself for any other kind), with
// bb's bounds: pgzip on two 1 MiB blocks, zstd on one goroutine with its
// window bounded by MaxZstdWindow. closeFn releases the decoder.
func newReader(kind Compression, r io.Reader) (zr io.Reader, closeFn func(), err error) {
	switch kind {
	case Gzip:
		gz, err := pgzip.NewReaderN(r, 1<<20, 2)
		if err != nil {
			return nil, nil, err
		}
		return gz, func() { gz.Close() }, nil
	case Zstd:
		zd, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxZstdWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, err
		}
		return zd, zd.Close, nil
	}
	return r, func() {}, nil
}
