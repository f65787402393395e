package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"

	"github.com/bot-bottle/bb/internal/iox"
)

// copyBufSize is the buffer blobs go through when the kernel cannot copy
// them itself: cat's size, which stays in the CPU's cache.
const copyBufSize = 128 << 10

// tarWriter writes a tar stream. archive/tar encodes the headers; bodies
// are written here, so a blob can go from the store's file to an output
// file or pipe inside the kernel (copy_file_range, sendfile) instead of
// through a buffer.
type tarWriter struct {
	ctx      context.Context
	w        io.Writer
	f        *os.File // w, when it is a file
	n        int64
	progress func(int64)
	buf      []byte
}

func newTarWriter(ctx context.Context, w io.Writer, progress func(int64)) *tarWriter {
	f, _ := w.(*os.File)
	return &tarWriter{ctx: ctx, w: w, f: f, progress: progress}
}

// Write writes bytes as they are (a body, or padding).
func (t *tarWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	t.add(int64(n))
	return n, err
}

func (t *tarWriter) add(n int64) {
	t.n += n
	if t.progress != nil {
		t.progress(t.n)
	}
}

// header writes the header blocks of an entry.
func (t *tarWriter) header(h *tar.Header) error {
	var b bytes.Buffer
	// A throwaway tar.Writer writes the header blocks into b; the body
	// and its padding are written by the caller.
	if err := tar.NewWriter(&b).WriteHeader(h); err != nil {
		return err
	}
	_, err := t.Write(b.Bytes())
	return err
}

var zeroBlock [512]byte

// pad ends a body of size bytes with zeros up to the next 512-byte block.
func (t *tarWriter) pad(size int64) error {
	if r := size % 512; r != 0 {
		_, err := t.Write(zeroBlock[:512-r])
		return err
	}
	return nil
}

// close writes the end-of-archive marker: two zero blocks.
func (t *tarWriter) close() error {
	for range 2 {
		if _, err := t.Write(zeroBlock[:]); err != nil {
			return err
		}
	}
	return nil
}

// copyFile writes n bytes of src, from its current offset, as a body.
// It returns fewer than n bytes only if src ends early.
func (t *tarWriter) copyFile(src *os.File, n int64) (int64, error) {
	var done int64
	if t.f != nil {
		m, handled, err := zeroCopy(t.ctx, t.f, src, n, t.add)
		done = m
		if err != nil || handled {
			return done, err
		}
	}
	if t.buf == nil {
		t.buf = make([]byte, copyBufSize)
	}
	m, err := io.CopyBuffer(writerOnly{t}, io.LimitReader(iox.ContextReader(t.ctx, src), n-done), t.buf)
	return done + m, err
}

// writerOnly hides everything but Write, so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }
