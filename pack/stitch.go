package pack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	kflate "github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
)

// Stitching: the flattened layer reuses the compressed bytes of its
// layers wherever they did not change.
//
// bb writes gzip layers with pgzip (layer.Write): one gzip member whose
// deflate stream is cut every layer.DefaultBlockSize uncompressed bytes
// by a sync flush (an empty stored block, 00 00 ff ff, byte-aligned),
// each block compressed with the 32 KiB before it as its dictionary. A
// block's compressed bytes therefore decode to the same bytes anywhere
// in another deflate stream, provided the 32 KiB before them are the
// same. The flattened layer is one gzip member: each layer's tar, bottom
// up, with the entries the layers above it hide, its whiteouts and its
// end-of-archive cut out, then one end-of-archive. Every block of a gzip
// layer that loses nothing, and whose 32 KiB before lose nothing (the
// first block of a member has no dictionary), is copied compressed; the
// rest is compressed again. The trailer's CRC-32 and
// size are those of the new tar, so a mistake here fails every gzip
// reader's check instead of passing unnoticed.
//
// A gzip layer written otherwise (no sync flush at the block
// boundaries) is simply compressed again, block by block.

const (
	stitchBlock  = layer.DefaultBlockSize
	deflateDict  = 32 << 10
	verifyPrefix = 4 << 10
)

var syncMarker = []byte{0, 0, 0xff, 0xff}

// countReader counts the compressed bytes read from the blob.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// span is a byte range [a, b) of the first layer's tar; b < 0 while open.
type span struct{ a, b int64 }

// block is one pgzip block of the first layer.
type block struct {
	start  int64  // offset in the tar
	data   []byte // its uncompressed bytes
	dict   []byte // the 32 KiB before it
	cstart int64  // its compressed bytes in the blob, -1 if unknown
	cend   int64
}

func (b *block) end() int64 { return b.start + int64(len(b.data)) }

// emitter writes the flattened layer: a gzip header, deflate data
// (copied blocks and freshly compressed bytes), the gzip trailer.
type emitter struct {
	out   *bufio.Writer
	level int
	zw    *kflate.Writer
	fresh bool // zw must be reset before its next write
	dirty bool // zw holds bytes not yet flushed
	crc   uint32
	size  int64
	diff  hash.Hash
	tail  []byte // ends with the last deflateDict bytes of the new tar (dict)
	tee   io.Writer
}

func newEmitter(w io.Writer, level int) (*emitter, error) {
	e := &emitter{out: bufio.NewWriterSize(w, 1<<20), level: level, diff: sha256.New(), fresh: true}
	zw, err := kflate.NewWriter(io.Discard, level)
	if err != nil {
		return nil, err
	}
	e.zw = zw
	// gzip header: deflate, no flags, no mtime, OS unknown.
	_, err = e.out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	return e, err
}

func (e *emitter) account(p []byte) {
	if e.tee != nil {
		_, _ = e.tee.Write(p)
	}
	e.crc = crc32.Update(e.crc, crc32.IEEETable, p)
	e.size += int64(len(p))
	e.diff.Write(p)
	if len(p) >= deflateDict {
		e.tail = append(e.tail[:0], p[len(p)-deflateDict:]...)
		return
	}
	// Keep up to twice the dictionary, so that a run of small writes
	// moves each byte at most once more.
	if len(e.tail)+len(p) > 2*deflateDict {
		e.tail = append(e.tail[:0], e.dict()...)
	}
	e.tail = append(e.tail, p...)
}

// dict is the last deflateDict bytes of the new tar (fewer at its start).
func (e *emitter) dict() []byte { return e.tail[max(0, len(e.tail)-deflateDict):] }

// Write compresses p into the layer.
func (e *emitter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if e.fresh {
		e.zw.ResetDict(e.out, e.dict())
		e.fresh = false
	}
	e.account(p)
	e.dirty = true
	return e.zw.Write(p)
}

// copyBlock appends a block's compressed bytes (read from blob) as they
// are; data is what they decode to.
func (e *emitter) copyBlock(blob io.ReaderAt, b *block) error {
	if e.dirty {
		if err := e.zw.Flush(); err != nil {
			return err
		}
		e.dirty = false
	}
	e.fresh = true
	if _, err := io.Copy(e.out, io.NewSectionReader(blob, b.cstart, b.cend-b.cstart)); err != nil {
		return err
	}
	e.account(b.data)
	return nil
}

// close ends the deflate stream and writes the gzip trailer.
func (e *emitter) close() error {
	if e.fresh {
		e.zw.ResetDict(e.out, e.dict())
	}
	if err := e.zw.Close(); err != nil {
		return err
	}
	var t [8]byte
	binary.LittleEndian.PutUint32(t[:4], e.crc)
	binary.LittleEndian.PutUint32(t[4:], uint32(e.size))
	if _, err := e.out.Write(t[:]); err != nil {
		return err
	}
	return e.out.Flush()
}

// stitcher cuts the first layer's tar and decides, block by block, what
// is copied and what is compressed again.
type stitcher struct {
	e       *emitter
	blob    *os.File
	pending []*block
	cuts    []span // removed ranges, in order
	known   int64  // the fate of every byte before this offset is known
	buf     []byte // verify's read buffer
	// Counters for the log and tests.
	copied, recompressed int64
}

// cut removes [a, ∞) until closed by closeCut.
func (s *stitcher) cut(a int64) { s.cuts = append(s.cuts, span{a, -1}) }

func (s *stitcher) closeCut(b int64) {
	if n := len(s.cuts); n > 0 && s.cuts[n-1].b < 0 {
		s.cuts[n-1].b = b
	}
}

// intersects reports whether a cut meets [a, b).
func (s *stitcher) intersects(a, b int64) bool {
	for _, c := range s.cuts {
		if c.a < b && (c.b < 0 || c.b > a) {
			return true
		}
	}
	return false
}

// emitReady emits every pending block whose fate is known.
func (s *stitcher) emitReady() error {
	for len(s.pending) > 0 && s.pending[0].end() <= s.known {
		b := s.pending[0]
		s.pending = s.pending[1:]
		if err := s.emit(b); err != nil {
			return err
		}
		// Cuts entirely before the next block's dictionary are done with.
		lo := b.end() - deflateDict
		i := 0
		for i < len(s.cuts) && s.cuts[i].b >= 0 && s.cuts[i].b <= lo {
			i++
		}
		s.cuts = s.cuts[i:]
	}
	return nil
}

func (s *stitcher) emit(b *block) error {
	a, z := b.start, b.end()
	if !s.intersects(max(0, a-deflateDict), z) && b.cstart >= 0 && b.cend > b.cstart && s.verify(b) {
		s.copied += z - a
		return s.e.copyBlock(s.blob, b)
	}
	// Compress again what is left of it.
	p := a
	for _, c := range s.cuts {
		if c.b >= 0 && c.b <= p {
			continue
		}
		if c.a >= z {
			break
		}
		if c.a > p {
			if _, err := s.e.Write(b.data[p-a : c.a-a]); err != nil {
				return err
			}
			s.recompressed += c.a - p
		}
		if c.b < 0 || c.b >= z {
			return nil
		}
		p = c.b
	}
	if p < z {
		if _, err := s.e.Write(b.data[p-a:]); err != nil {
			return err
		}
		s.recompressed += z - p
	}
	return nil
}

// finalEmpty is an empty stored block with the final bit: appended to
// deflate data that ends at a block boundary, it ends the stream there.
var finalEmpty = []byte{1, 0, 0, 0xff, 0xff}

// verify decodes the block's compressed bytes with its dictionary,
// followed by finalEmpty: they must give exactly its bytes and end
// there. A prefix check is not enough: in a run of one repeated byte, a
// block end found a few bytes off (a writer that flushed near, not at,
// the block boundary) decodes to the same prefix but to a length off by
// those bytes, and the copied stream's CRC-32 and size would be wrong.
// The final block also proves the bytes end on a deflate block boundary,
// byte-aligned, as a sync flush leaves them.
func (s *stitcher) verify(b *block) bool {
	r := io.MultiReader(io.NewSectionReader(s.blob, b.cstart, b.cend-b.cstart), bytes.NewReader(finalEmpty))
	zr := kflate.NewReaderDict(r, b.dict)
	defer zr.Close()
	if s.buf == nil {
		s.buf = make([]byte, 64<<10)
	}
	want := b.data
	for {
		n, err := zr.Read(s.buf)
		if n > len(want) || !bytes.Equal(s.buf[:n], want[:n]) {
			return false
		}
		want = want[n:]
		if errors.Is(err, io.EOF) {
			return len(want) == 0
		}
		if err != nil {
			return false
		}
	}
}

// produceBlocks decompresses the first layer (one gzip member, the
// whole blob) block by block, on its own goroutine, and sends each block
// with where its compressed bytes start and end (-1: unknown, not to be
// copied); the last one, partial, has cend -1. A failure is sent on
// errc, errNoStitch if the blob does not start with a gzip member.
func produceBlocks(ctx context.Context, blob *os.File, out chan<- *block, errc chan<- error) {
	defer close(out)
	fail := func(err error) { errc <- err }
	fi, err := blob.Stat()
	if err != nil {
		fail(err)
		return
	}
	cr := &countReader{r: io.NewSectionReader(blob, 0, fi.Size())}
	br := bufio.NewReaderSize(cr, 256<<10)
	consumed := func() int64 { return cr.n - int64(br.Buffered()) }
	zr, err := kgzip.NewReader(br)
	if err != nil {
		fail(fmt.Errorf("%w: %v", errNoStitch, err))
		return
	}
	zr.Multistream(false)
	// read fills buf from the member and any members after it (their
	// blocks are decompressed, never copied: reusable turns false).
	reusable := true
	read := func(buf []byte) (int, error) {
		n := 0
		for n < len(buf) {
			k, err := io.ReadFull(zr, buf[n:])
			n += k
			if err == nil {
				break
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				return n, err
			}
			if consumed() == fi.Size() {
				return n, io.EOF
			}
			reusable = false
			if err := zr.Reset(br); err != nil {
				return n, err
			}
			zr.Multistream(false)
		}
		return n, nil
	}
	var prev []byte
	var start int64
	send := (&blockSender{blob: blob, out: out}).send
	cstart := consumed()
	for {
		if err := ctx.Err(); err != nil {
			fail(err)
			return
		}
		b := &block{start: start, cstart: cstart, cend: -1, data: make([]byte, stitchBlock)}
		if len(prev) > 0 {
			b.dict = prev[len(prev)-deflateDict:]
		}
		n, err := read(b.data)
		b.data = b.data[:n]
		start += int64(n)
		if !reusable {
			b.cstart = -1
		}
		if err == nil {
			// A whole block: the decompressor stands at its end.
			if reusable {
				b.cend = findSync(blob, consumed())
			}
			cstart = b.cend
			prev = b.data
			send(b)
			continue
		}
		if !errors.Is(err, io.EOF) {
			fail(err)
			return
		}
		send(b)
		send(nil)
		return
	}
}

// blockSender sends produceBlocks' blocks one late: a block's end is
// only taken for a sync flush when the next block's data decodes from
// there. Bytes that look like a sync flush near the decompressor's
// position can be the stream's final empty block, or lie after more
// compressed data (a writer that did not cut the stream at the block's
// end): copying such a block would put a final flag or data twice in the
// middle of the new stream.
type blockSender struct {
	blob    io.ReaderAt
	out     chan<- *block
	pending *block
}

// send sends the pending block, its end checked against b (nil: the
// stream ended), and keeps b.
func (s *blockSender) send(b *block) {
	if p := s.pending; p != nil {
		// b.cstart is p.cend, b.dict the end of p.data. A first filter:
		// stitcher.verify checks each copied block whole.
		if p.cend >= 0 && (b == nil || len(b.data) == 0 || !decodesFrom(s.blob, p.cend, p.data, b.data)) {
			p.cend = -1
			if b != nil {
				b.cstart = -1
			}
		}
		s.out <- p
	}
	s.pending = nil
	if b != nil && len(b.data) > 0 {
		s.pending = b
	}
}

// decodesFrom reports whether the deflate data at off in blob, with the
// end of before as its dictionary, starts with the start of after.
func decodesFrom(blob io.ReaderAt, off int64, before, after []byte) bool {
	return decodesTo(io.NewSectionReader(blob, off, 1<<62), before[max(0, len(before)-deflateDict):], after)
}

// decodesTo reports whether the deflate data r, with dict as its
// dictionary, starts with the first verifyPrefix bytes of want.
func decodesTo(r io.Reader, dict, want []byte) bool {
	zr := kflate.NewReaderDict(r, dict)
	defer zr.Close()
	want = want[:min(verifyPrefix, len(want))]
	got := make([]byte, len(want))
	if _, err := io.ReadFull(zr, got); err != nil {
		return false
	}
	return bytes.Equal(got, want)
}

// baseReader is the first layer's tar as its tar.Reader reads it, from
// the blocks produceBlocks sends; it hands every block it has read
// through to the stitcher.
type baseReader struct {
	blocks <-chan *block
	errc   <-chan error
	s      *stitcher
	pos    int64
	cur    *block
	off    int  // read offset in cur.data
	inData bool // reading an entry's data: its fate is known
	err    error
}

func (r *baseReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.cur == nil {
		b, ok := <-r.blocks
		if !ok {
			r.err = io.EOF
			select {
			case err := <-r.errc:
				r.err = err
			default:
			}
			return 0, r.err
		}
		r.cur, r.off = b, 0
	}
	n := copy(p, r.cur.data[r.off:])
	r.off += n
	r.pos += int64(n)
	if r.inData {
		r.s.known = r.pos
	}
	if r.off == len(r.cur.data) {
		r.s.pending = append(r.s.pending, r.cur)
		r.cur = nil
	}
	if err := r.s.emitReady(); err != nil {
		r.err = err
		return n, err
	}
	return n, nil
}

// findSync returns the offset just past the one sync flush found within
// a few bytes of consumed (where the decompressor stood when it had
// produced a whole block), or -1. After the last symbol of a block come
// at most 15 bits of end-of-block code and the 3 bits of the empty
// stored block's header, so the marker starts at most 3 bytes after
// consumed (and the decompressor reads at most 2 bytes ahead of the
// bits it used); the byte before the marker holds that header and its
// zero padding, so it is never 0xff. No match, or more than one, and
// the blocks on either side are compressed again; a block is copied
// only after its start decodes to its own first bytes (stitcher.verify).
func findSync(blob io.ReaderAt, consumed int64) int64 {
	lo := max(0, consumed-4)
	var w [16]byte
	n, _ := blob.ReadAt(w[:], lo)
	buf := w[:n]
	found := int64(-1)
	for i := 0; i+len(syncMarker) < len(buf); i++ {
		if !bytes.Equal(buf[i:i+4], syncMarker) {
			continue
		}
		if next := buf[i+4]; (next>>1)&3 == 3 { // reserved block type
			continue
		}
		if found >= 0 {
			return -1
		}
		found = lo + int64(i) + 4
	}
	return found
}

// errNoStitch: the first layer is not one gzip member; Flatten
// compresses the whole merged tar instead.
var errNoStitch = errors.New("the first layer is not a single gzip member")

// stitch writes the flattened layer of layers (the first one gzip) into
// s, reusing the compressed blocks of every gzip layer.
func (f *flattener) stitch(ctx context.Context, s *oci.Store, layers []v1.Layer, level int, tee io.Writer) (*flat, error) {
	if level == 0 {
		level = layer.DefaultLevel
	}
	w, err := s.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	e, err := newEmitter(w, level)
	if err != nil {
		return nil, err
	}
	e.tee = tee
	var copied, recompressed int64
	// The layers above the first are gzip as bb writes them, or were
	// imported otherwise: those are compressed again entry by entry.
	tw := tar.NewWriter(e)
	for j, l := range layers {
		if j > 0 && !isGzip(l) {
			if err := f.copyLayer(ctx, l, j, tw); err != nil {
				return nil, fmt.Errorf("layer %d: %w", j, err)
			}
			if err := tw.Flush(); err != nil {
				return nil, err
			}
			continue
		}
		c, r, err := f.stitchBlob(ctx, s, l, j, e)
		if err != nil {
			if j == 0 && errors.Is(err, errNoStitch) {
				return nil, err
			}
			if errors.Is(err, errNoStitch) {
				// Not the fallback: the layers below are already written.
				err = fmt.Errorf("%v", err)
			}
			return nil, fmt.Errorf("layer %d: %w", j, err)
		}
		copied += c
		recompressed += r
	}
	// The end of the archive: two zero blocks.
	if _, err := e.Write(make([]byte, 2*512)); err != nil {
		return nil, err
	}
	if err := e.close(); err != nil {
		return nil, err
	}
	digest, size, err := w.Commit(ctx, v1.Hash{}, -1)
	if err != nil {
		return nil, err
	}
	return &flat{
		desc:    v1.Descriptor{MediaType: types.OCILayer, Digest: digest, Size: size},
		diffID:  v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(e.diff.Sum(nil))},
		created: w.Created(), copied: copied, recompressed: recompressed,
	}, nil
}

// stitchBlob hands the kept entries of layer j (a gzip blob) to e,
// copying the compressed blocks that lose nothing, and returns how many
// bytes of its tar were copied and compressed again.
func (f *flattener) stitchBlob(ctx context.Context, s *oci.Store, l v1.Layer, j int, e *emitter) (int64, int64, error) {
	dgst, err := l.Digest()
	if err != nil {
		return 0, 0, err
	}
	blob, err := s.Blob(ctx, dgst)
	if err != nil {
		return 0, 0, err
	}
	defer blob.Close()
	st := &stitcher{e: e, blob: blob}
	err = f.stitchLayer(ctx, st, j)
	return st.copied, st.recompressed, err
}

// stitchLayer reads the tar of layer j (st.blob) and hands its kept
// bytes to st. A gzip member's first block is compressed without a
// dictionary, so it decodes the same after whatever the layers below
// left in the stream; the blocks after it need the 32 KiB before them,
// which stitcher.emit checks.
func (f *flattener) stitchLayer(ctx context.Context, st *stitcher, j int) error {
	ctx, cancel := context.WithCancel(ctx)
	blocks := make(chan *block, 2)
	errc := make(chan error, 1)
	go produceBlocks(ctx, st.blob, blocks, errc)
	defer func() {
		cancel()
		for range blocks { // let the producer end
		}
	}()
	r := &baseReader{blocks: blocks, errc: errc, s: st}
	tr := tar.NewReader(r)
	hidden := false
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The next header starts at the block after the data just read.
		start := (r.pos + 511) &^ 511
		h, err := tr.Next()
		if hidden {
			st.closeCut(start)
		}
		if errors.Is(err, io.EOF) {
			// The end-of-archive and anything after it go.
			st.cut(start)
			break
		}
		if err != nil {
			return err
		}
		keep, err := f.keep(j, clean(h.Name), h)
		if err != nil {
			return err
		}
		if hidden = !keep; hidden {
			st.cut(start)
		}
		st.known = r.pos
		if err := st.emitReady(); err != nil {
			return err
		}
		r.inData = true
		_, err = io.Copy(io.Discard, tr)
		r.inData = false
		if err != nil {
			return err
		}
	}
	// Read to the end of the member (its CRC is checked there): it must
	// be the whole blob.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	st.known = 1 << 62
	return st.emitReady()
}
