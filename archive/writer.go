package archive

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DockerManifest is one entry of a docker archive's manifest.json, as
// docker save writes it and docker load, podman load and skopeo's
// docker-archive: read it: paths of the config and of each layer's file
// inside the archive, and the names to tag the image with.
type DockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Writer writes an archive as one stream, entry by entry, and never
// seeks: w may be a pipe (the body of docker load's request) as well as
// a file. Each entry's size is known before its body is written. Bodies
// come from memory (File), from the store (Blob: as stored, inside the
// kernel when w is a file) or from a caller (Stream, Body). Every entry
// has fixed modes and times, so the same content always gives the same
// bytes. A name written before is skipped: blobs are named by content,
// and a layer listed twice is written once. bb export (Write), the
// Docker backend's load (WriteDocker) and the Apple container backend's
// load (WriteImage) all write through it.
type Writer struct {
	ctx context.Context
	tw  *tarWriter
	// Verify hashes each store blob as it is written and fails when it
	// does not match its digest (the copy then goes through memory);
	// without it a blob's size is checked, its bytes are not.
	Verify  bool
	written map[string]bool
}

// NewWriter returns a Writer onto w; progress, if set, is called with
// the bytes written so far.
func NewWriter(ctx context.Context, w io.Writer, progress func(n int64)) *Writer {
	return &Writer{ctx: ctx, tw: newTarWriter(ctx, w, progress), written: map[string]bool{}}
}

// Len is the number of bytes written so far.
func (w *Writer) Len() int64 { return w.tw.n }

// first records name and reports whether it is new.
func (w *Writer) first(name string) bool {
	if w.written[name] {
		return false
	}
	w.written[name] = true
	return true
}

// Dir writes a directory entry.
func (w *Writer) Dir(name string) error {
	if !w.first(name) {
		return nil
	}
	return w.tw.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch})
}

// File writes b as the regular file name.
func (w *Writer) File(name string, b []byte) error {
	if !w.first(name) {
		return nil
	}
	if err := w.tw.header(fileHeader(name, int64(len(b)))); err != nil {
		return err
	}
	if _, err := w.tw.Write(b); err != nil {
		return err
	}
	return w.tw.pad(int64(len(b)))
}

// JSON writes v, encoded as JSON, as the file name.
func (w *Writer) JSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.File(name, b)
}

// Layout writes an OCI image layout's oci-layout and index.json.
func (w *Writer) Layout(index v1.IndexManifest) error {
	if err := w.File(LayoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return w.JSON(IndexFile, index)
}

// BlobDirs writes the directories blobs live in: blobs/ and blobs/sha256/.
func (w *Writer) BlobDirs() error {
	for _, d := range []string{"blobs/", BlobsDir} {
		if err := w.Dir(d); err != nil {
			return err
		}
	}
	return nil
}

// Blob writes the store's blob desc, as stored, as the file name
// (BlobsDir+hex for an OCI layout). Its size in the store must be
// desc.Size; with Verify, its content must hash to desc.Digest.
func (w *Writer) Blob(s *oci.Store, name string, desc v1.Descriptor) error {
	if !w.first(name) {
		return nil
	}
	f, err := s.Blob(w.ctx, desc.Digest)
	if err != nil {
		return fmt.Errorf("exporting blob: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("exporting blob %s: %w", desc.Digest, err)
	}
	if fi.Size() != desc.Size {
		return fmt.Errorf("exporting blob %s: it has %d bytes in the store, not %d: the store is damaged", desc.Digest, fi.Size(), desc.Size)
	}
	if w.Verify {
		return w.stream(name, desc.Size, f, desc.Digest)
	}
	if err := w.tw.header(fileHeader(name, desc.Size)); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	n, err := w.tw.copyFile(f, desc.Size)
	if err != nil {
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		return fmt.Errorf("writing blob %s into the archive: %w", desc.Digest, err)
	}
	if n != desc.Size {
		return fmt.Errorf("exporting blob %s: read %d of %d bytes: the store is damaged", desc.Digest, n, desc.Size)
	}
	if err := w.tw.pad(desc.Size); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}

// Stream writes the file name of size bytes read from r, which must hold
// exactly that many; when digest is set, they must hash to it.
func (w *Writer) Stream(name string, size int64, r io.Reader, digest v1.Hash) error {
	if !w.first(name) {
		return nil
	}
	return w.stream(name, size, r, digest)
}

func (w *Writer) stream(name string, size int64, r io.Reader, digest v1.Hash) error {
	return w.body(name, size, func(out io.Writer) error {
		h := sha256.New()
		if digest != (v1.Hash{}) {
			out = io.MultiWriter(out, h)
		}
		got, err := io.Copy(out, iox.ContextReader(w.ctx, io.LimitReader(r, size)))
		if err != nil {
			return fmt.Errorf("reading %s: %w (read %d of %d bytes)", name, err, got, size)
		}
		if got < size {
			return fmt.Errorf("reading %s: it ends after %d of %d bytes", name, got, size)
		}
		if extra, _ := r.Read(make([]byte, 1)); extra > 0 {
			return fmt.Errorf("%s is larger than its descriptor says (%d bytes)", name, size)
		}
		if digest == (v1.Hash{}) {
			return nil
		}
		if sum := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); sum != digest {
			return &oci.DigestMismatchError{WantDigest: digest, GotDigest: sum, WantSize: size, GotSize: got}
		}
		return nil
	})
}

// Body writes the file name of size bytes, which write writes into its
// argument (a layer decompressed on the way, say). Writing fewer or
// more than size bytes is an error.
func (w *Writer) Body(name string, size int64, write func(io.Writer) error) error {
	if !w.first(name) {
		return nil
	}
	return w.body(name, size, write)
}

func (w *Writer) body(name string, size int64, write func(io.Writer) error) error {
	if err := w.tw.header(fileHeader(name, size)); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	bw := &boundedWriter{w: w.tw, left: size}
	if err := write(bw); err != nil {
		if w.ctx.Err() != nil {
			return w.ctx.Err()
		}
		return err
	}
	if bw.left != 0 {
		return fmt.Errorf("%s: %d bytes were written of the %d its entry declares", name, size-bw.left, size)
	}
	if err := w.tw.pad(size); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}

// Close writes tar's end-of-archive marker. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if err := w.tw.close(); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	return nil
}

// epoch is the modification time of every entry, so the same images
// always give the same archive.
var epoch = time.Unix(0, 0)

func fileHeader(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: epoch}
}

// boundedWriter refuses bytes beyond an entry's declared size.
type boundedWriter struct {
	w    io.Writer
	left int64
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		return 0, fmt.Errorf("more bytes than the entry declares (%d too many)", int64(len(p))-b.left)
	}
	n, err := b.w.Write(p)
	b.left -= int64(n)
	return n, err
}
