package layer

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/bot-bottle/bb/internal/iox"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bot-bottle/bb/oci"
)

// Recompress writes the layer blob src, which is in the store s, into s
// again compressed as to (Gzip or Zstd), in one streamed pass: the blob's
// bytes are checked against src.Digest and src.Size, and what they
// decompress to against diffID, while they are read. A blob that fails
// either check leaves nothing in the store. The new layer has the same
// diffID, so an image config that names the layer stays valid.
func Recompress(ctx context.Context, s *oci.Store, src v1.Descriptor, diffID v1.Hash, to Compression, opts Options) (*Layer, error) {
	from, ok := CompressionOf(src.MediaType)
	if !ok {
		return nil, fmt.Errorf("layer %s: media type %q is not a layer bb reads", src.Digest, src.MediaType)
	}
	if to != Gzip && to != Zstd {
		return nil, fmt.Errorf("layer %s: cannot compress layers as %q (gzip or zstd)", src.Digest, to)
	}
	if src.Digest.Algorithm != "sha256" || diffID.Algorithm != "sha256" {
		return nil, fmt.Errorf("layer %s: only sha256 layers are recompressed", src.Digest)
	}
	f, err := s.Blob(ctx, src.Digest)
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", src.Digest, err)
	}
	defer f.Close()
	raw := &iox.HashingReader{R: f, H: sha256.New()}
	tarStream, closeFn, err := newReader(from, raw)
	if err != nil {
		if from == Gzip {
			return nil, fmt.Errorf("layer %s is not gzip: %w: the store is damaged (bb doctor)", src.Digest, err)
		}
		return nil, fmt.Errorf("layer %s: %w", src.Digest, err)
	}
	defer closeFn()
	opts.Compression = to
	v := &verifyingReader{r: tarStream, raw: raw, src: src, diffID: diffID, h: sha256.New()}
	l, err := Write(ctx, s, v, opts)
	if err != nil {
		if re := (*ReadError)(nil); errors.As(err, &re) {
			err = re.Err
		}
		return nil, fmt.Errorf("recompressing layer %s as %s: %w", src.Digest, to, err)
	}
	return l, nil
}

// verifyingReader passes the decompressed tar stream on and, at its end,
// checks the compressed blob's digest and size (reading what the
// decompressor left) and the stream's diffID: a mismatch is returned in
// place of io.EOF, so Write discards what it wrote.
type verifyingReader struct {
	r      io.Reader
	raw    *iox.HashingReader
	src    v1.Descriptor
	diffID v1.Hash
	h      hash.Hash
	done   bool
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done {
		return 0, io.EOF
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	if !errors.Is(err, io.EOF) {
		return n, err
	}
	if err := v.check(); err != nil {
		return n, err
	}
	v.done = true
	return n, io.EOF
}

func (v *verifyingReader) check() error {
	if _, err := io.Copy(io.Discard, v.raw); err != nil {
		return fmt.Errorf("reading layer %s: %w", v.src.Digest, err)
	}
	if v.raw.N != v.src.Size {
		return fmt.Errorf("layer %s has %d bytes in the store, its descriptor says %d: the store is damaged (bb doctor)", v.src.Digest, v.raw.N, v.src.Size)
	}
	if got := sum(v.raw.H); got != v.src.Digest {
		return fmt.Errorf("layer %s hashes to %s in the store: the blob is damaged (bb doctor)", v.src.Digest, got)
	}
	if got := sum(v.h); got != v.diffID {
		return fmt.Errorf("layer %s decompresses to %s, not its diffID %s: the snapshot is damaged", v.src.Digest, got, v.diffID)
	}
	return nil
}
