package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
)

// ReadOptions tune Read.
type ReadOptions struct {
	// Size is the archive's length when it is known (a regular file).
	// Entries that declare more bytes than are left are refused before
	// any of them is read. Zero means unknown.
	Size int64
	// Progress, if set, is called with the bytes of the archive read so far.
	Progress func(n int64)
}

// Contents is what Read found in an archive. Every blob it names is in
// the store, verified; nothing is tagged yet.
type Contents struct {
	// Images are the images the archive names, in its order.
	Images []FoundImage
	// Format is "oci" (index.json) or "docker" (manifest.json only).
	Format string
	// NewBlobs are the blobs Read added to the store.
	NewBlobs []v1.Hash
	// Bytes is the length of the archive.
	Bytes int64
}

// FoundImage is one image of an archive.
type FoundImage struct {
	// Manifest is the image manifest's descriptor (in the store).
	Manifest v1.Descriptor
	// Name is the reference the archive gives it (io.containerd.image.name,
	// else RepoTags), or "".
	Name string
	// Slug is the bottle it is a snapshot of (dev.bot-bottle.slug, else
	// recovered from a bot-bottle-committed-<slug> name), or "".
	Slug string
	// Metadata is the bottle's metadata.json carried with it, or nil.
	Metadata []byte
	// Annotations are its index.json entry's annotations.
	Annotations map[string]string
}

// Discard removes the blobs Read added that nothing in the store's
// index.json references: after a refusal, all of them.
func (c *Contents) Discard(ctx context.Context, s *oci.Store) error {
	return s.Discard(ctx, c.NewBlobs)
}

// fileEntry is a regular file of the archive, now in the store.
type fileEntry struct {
	digest v1.Hash
	size   int64
	head   []byte
	// comp, diffID and diffErr are what the file is as a layer (see
	// layer.DiffIDWriter), computed while it streamed in.
	comp    layer.Compression
	diffID  v1.Hash
	diffErr error
}

// reader is one pass over an archive.
type reader struct {
	ctx      context.Context
	s        *oci.Store
	opts     ReadOptions
	files    map[string]*fileEntry
	blobs    map[v1.Hash]*fileEntry
	seen     map[string]bool
	newBlobs []v1.Hash
	links    map[string]string // symbolic links of a docker archive (links.go)
	// manifests and configs are parsed once per digest.
	manifests map[v1.Hash]*v1.Manifest
	configs   map[v1.Hash]*v1.ConfigFile
	layout    []byte
	index     []byte
	legacy    []byte
	buf       []byte
}

// Read streams an archive from r into the store, once: each blob's
// sha256 and size are checked while it is written, then the images'
// graph (manifests, configs, layers, metadata) is checked against what
// arrived. On error, the blobs it added are removed again and the store
// is as it was; errors about the archive's content wrap ErrInvalid. A
// gzip-compressed archive is decompressed on the way.
func Read(ctx context.Context, s *oci.Store, r io.Reader, opts ReadOptions) (*Contents, error) {
	rd := &reader{
		ctx: ctx, s: s, opts: opts,
		files: map[string]*fileEntry{}, blobs: map[v1.Hash]*fileEntry{}, seen: map[string]bool{},
		manifests: map[v1.Hash]*v1.Manifest{}, configs: map[v1.Hash]*v1.ConfigFile{},
	}
	c, err := rd.read(r)
	if err != nil {
		if derr := s.Discard(context.WithoutCancel(ctx), rd.newBlobs); derr != nil {
			return nil, fmt.Errorf("%w (and removing the blobs it added failed: %v)", err, derr)
		}
		return nil, err
	}
	return c, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// counted counts the bytes of the archive, reporting the total so far to
// the progress callback.
func (rd *reader) counted(r io.Reader) *iox.CountingReader {
	cr := &iox.CountingReader{R: r}
	if progress := rd.opts.Progress; progress != nil {
		cr.OnRead = func(int64) { progress(cr.Count()) }
	}
	return cr
}

func (rd *reader) read(r io.Reader) (*Contents, error) {
	outer := rd.counted(r)
	src, gzipped, closeSrc, err := decompressed(outer)
	if err != nil {
		return nil, err
	}
	defer closeSrc()
	size := rd.opts.Size
	if gzipped {
		size = 0 // the tar stream's length is not known
	}
	cr := &iox.CountingReader{R: src}
	rd.buf = make([]byte, copyBufSize)
	dataEnd, err := rd.entries(tar.NewReader(cr), cr, size)
	if err != nil {
		return nil, err
	}
	if err := rd.trailer(cr, dataEnd); err != nil {
		return nil, err
	}
	if err := rd.resolveLinks(); err != nil {
		return nil, err
	}
	c, err := rd.graph()
	if err != nil {
		return nil, err
	}
	c.Bytes = outer.Count()
	c.NewBlobs = rd.newBlobs
	return c, nil
}

// decompressed returns the tar stream of r: r itself, or the stream a
// gzip-compressed archive holds (gzipped). A zstd-compressed archive is
// refused.
func decompressed(r io.Reader) (src io.Reader, gzipped bool, closeSrc func(), err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(4)
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := pgzip.NewReader(br)
		if err != nil {
			return nil, false, nil, invalid("the archive looks gzip-compressed but is not: %v", err)
		}
		return zr, true, func() { zr.Close() }, nil
	case len(head) >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		return nil, false, nil, invalid("the archive is zstd-compressed: decompress it first (zstd -d)")
	}
	return br, false, func() {}, nil
}

// entries reads every entry up to tar's end-of-archive marker and
// returns where the last entry's data ends. size is the tar stream's
// length when known (else 0).
func (rd *reader) entries(tr *tar.Reader, cr *iox.CountingReader, size int64) (int64, error) {
	var dataEnd int64
	for entries := 0; ; entries++ {
		if err := rd.ctx.Err(); err != nil {
			return 0, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			if cr.Count()-dataEnd < 2*512 {
				return 0, invalid("the archive ends at byte %d without tar's end-of-archive marker: it is truncated", cr.Count())
			}
			return dataEnd, nil
		}
		if err != nil {
			return 0, rd.tarError(err, cr.Count())
		}
		if entries >= MaxEntries {
			return 0, invalid("the archive has more than %d entries", MaxEntries)
		}
		start := cr.Count()
		dataEnd = start
		name, file, err := rd.header(hdr)
		if err != nil {
			return 0, err
		}
		if !file {
			continue
		}
		if size > 0 && hdr.Size > size-start {
			return 0, invalid("entry %q declares %d bytes, but only %d bytes of the archive are left", hdr.Name, hdr.Size, size-start)
		}
		dataEnd = start + (hdr.Size+511)/512*512
		if err := rd.entry(name, hdr, tr); err != nil {
			return 0, err
		}
	}
}

// header checks an entry's header and records its name; file is true
// for a regular file, whose body the caller reads. Directories and the
// links of a docker archive are recorded here.
func (rd *reader) header(hdr *tar.Header) (name string, file bool, err error) {
	name, err = cleanName(hdr.Name)
	if err != nil {
		return "", false, err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return name, false, nil
	case tar.TypeDir:
		return name, false, rd.see(name + "/")
	case tar.TypeSymlink:
		return name, false, rd.link(name, hdr)
	case tar.TypeReg:
		if name == "." {
			return "", false, invalid("entry %q is a file named like the archive's root", hdr.Name)
		}
	default:
		return "", false, invalid("entry %q is %s: bb archives hold only regular files and directories", hdr.Name, typeName(hdr))
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return "", false, invalid("entry %q is a sparse file: bb archives hold only regular files and directories", hdr.Name)
		}
	}
	return name, true, rd.see(name)
}

// trailer checks what follows the end-of-archive marker: only zero
// padding, at most MaxPadding bytes.
func (rd *reader) trailer(cr *iox.CountingReader, dataEnd int64) error {
	n, err := io.CopyBuffer(zeroWriter{}, io.LimitReader(cr, MaxPadding+1), rd.buf)
	if errors.Is(err, errNonZero) {
		return invalid("non-zero data follows the end of the archive (after byte %d)", dataEnd+2*512)
	}
	if err != nil {
		return rd.tarError(err, cr.Count())
	}
	if n > MaxPadding {
		return invalid("more than %d bytes of padding follow the end of the archive", MaxPadding)
	}
	return nil
}

// see records name, refusing a second entry with the same path.
func (rd *reader) see(name string) error {
	key := strings.TrimSuffix(name, "/")
	if rd.seen[key] {
		return invalid("the archive has two entries for %q", key)
	}
	rd.seen[key] = true
	return nil
}

// entry consumes one regular file.
func (rd *reader) entry(name string, hdr *tar.Header, tr io.Reader) error {
	readSmall := func(limit int64) ([]byte, error) {
		if hdr.Size > limit {
			return nil, invalid("%s is %d bytes; bb reads at most %d", name, hdr.Size, limit)
		}
		b := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, b); err != nil {
			return nil, rd.tarError(err, -1)
		}
		return b, nil
	}
	var err error
	switch {
	case name == LayoutFile:
		rd.layout, err = readSmall(MaxLayoutSize)
		return err
	case name == IndexFile:
		rd.index, err = readSmall(MaxIndexSize)
		return err
	case name == ManifestFile:
		rd.legacy, err = readSmall(MaxManifestSize)
		return err
	case name == "repositories":
		return nil // docker's legacy tag file; manifest.json says the same
	case strings.HasPrefix(name, "blobs/"):
		rest, ok := strings.CutPrefix(name, BlobsDir)
		if !ok || strings.Contains(rest, "/") {
			return invalid("entry %q is not a blob: blobs are blobs/sha256/<hex> (only sha256 is supported)", name)
		}
		h := v1.Hash{Algorithm: "sha256", Hex: rest}
		if oci.ValidHash(h) != nil {
			return invalid("entry %q is not named by a sha256 digest (64 lowercase hex digits)", name)
		}
		fe, err := rd.ingest(name, h, hdr.Size, tr)
		if err != nil {
			return err
		}
		rd.files[name] = fe
		rd.blobs[h] = fe
		return nil
	default:
		// Any other file may be part of a docker archive (<id>/layer.tar,
		// <id>.json): store it by its content.
		fe, err := rd.ingest(name, v1.Hash{}, hdr.Size, tr)
		if err != nil {
			return err
		}
		rd.files[name] = fe
		return nil
	}
}

// ingest copies one entry into the store, checking its sha256 against
// want (zero: any) and its length against size. A blob the store already
// has is only hashed. In the same pass, the entry's diffID as a layer is
// computed (a compressed one is decompressed alongside, never kept).
func (rd *reader) ingest(name string, want v1.Hash, size int64, r io.Reader) (*fileEntry, error) {
	hw := &headWriter{}
	dw := layer.NewDiffIDWriter()
	defer dw.Close()
	done := func(digest v1.Hash, n int64) *fileEntry {
		fe := &fileEntry{digest: digest, size: n, head: hw.head}
		fe.comp, fe.diffID, fe.diffErr = dw.Finish(digest)
		return fe
	}
	if want != (v1.Hash{}) {
		if n, err := rd.s.Stat(rd.ctx, want); err == nil && n == size {
			h := sha256.New()
			got, err := io.CopyBuffer(io.MultiWriter(h, hw, dw), r, rd.buf)
			if err != nil {
				return nil, rd.tarError(err, -1)
			}
			if err := checkBlob(name, want, size, hashOf(h), got); err != nil {
				return nil, err
			}
			now := time.Now()
			_ = os.Chtimes(rd.s.BlobPath(want), now, now) // in use: keep GC away
			return done(want, got), nil
		}
	}
	w, err := rd.s.NewWriter(rd.ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	er := &errReader{r: r}
	got, err := io.CopyBuffer(io.MultiWriter(w, hw, dw), er, rd.buf)
	if er.err != nil {
		return nil, rd.tarError(er.err, -1)
	}
	if err != nil {
		return nil, fmt.Errorf("writing %s into the store %s: %w", name, rd.s.Root(), err)
	}
	if want != (v1.Hash{}) {
		if err := checkBlob(name, want, size, w.Digest(), got); err != nil {
			return nil, err
		}
	}
	h, n, err := w.Commit(rd.ctx, want, size)
	if err != nil {
		return nil, fmt.Errorf("storing %s: %w", name, err)
	}
	if w.Created() {
		rd.newBlobs = append(rd.newBlobs, h)
	}
	return done(h, n), nil
}

func checkBlob(name string, want v1.Hash, wantSize int64, got v1.Hash, gotSize int64) error {
	if gotSize != wantSize {
		return invalid("entry %q has %d bytes, its header says %d", name, gotSize, wantSize)
	}
	if got != want {
		return invalid("entry %q does not match its name: its content hashes to %s; the archive is damaged or was altered", name, got)
	}
	return nil
}

// errReader remembers its reader's error (other than io.EOF), so a
// failed copy tells reading from writing.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// tarError explains an error of the tar reader.
func (rd *reader) tarError(err error, at int64) error {
	if err == nil {
		return nil
	}
	if rd.ctx.Err() != nil {
		return rd.ctx.Err()
	}
	where := ""
	if at >= 0 {
		where = fmt.Sprintf(" at byte %d", at)
	}
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return invalid("the archive ends in the middle of an entry%s: it is truncated", where)
	case errors.Is(err, tar.ErrHeader), errors.Is(err, tar.ErrFieldTooLong), errors.Is(err, tar.ErrInsecurePath):
		return invalid("not a tar archive, or a damaged tar header%s: %v", where, err)
	case errors.Is(err, pgzip.ErrChecksum), errors.Is(err, pgzip.ErrHeader):
		return invalid("the gzip stream around the archive is damaged: %v", err)
	}
	return fmt.Errorf("reading the archive%s: %w", where, err)
}

// cleanName checks an entry's path and returns it cleaned: relative, no
// "..", no leading "./".
func cleanName(n string) (string, error) {
	if n == "" {
		return "", invalid("an entry has an empty name")
	}
	if strings.HasPrefix(n, "/") || strings.HasPrefix(n, `\`) || (len(n) > 1 && n[1] == ':') {
		return "", invalid("entry %q has an absolute path", n)
	}
	for _, part := range strings.FieldsFunc(n, func(r rune) bool { return r == '/' || r == '\\' }) {
		if part == ".." {
			return "", invalid("entry %q escapes the archive (..)", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return ".", nil
	}
	return c, nil
}

func typeName(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeSymlink:
		return fmt.Sprintf("a symbolic link (to %q)", h.Linkname)
	case tar.TypeLink:
		return fmt.Sprintf("a hard link (to %q)", h.Linkname)
	case tar.TypeChar:
		return "a character device"
	case tar.TypeBlock:
		return "a block device"
	case tar.TypeFifo:
		return "a FIFO"
	case tar.TypeGNUSparse:
		return "a sparse file"
	}
	return fmt.Sprintf("of tar type %q", h.Typeflag)
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
}

// headWriter keeps the first bytes written (for telling layer
// compression apart).
type headWriter struct{ head []byte }

func (h *headWriter) Write(p []byte) (int, error) {
	if need := 4 - len(h.head); need > 0 {
		h.head = append(h.head, p[:min(need, len(p))]...)
	}
	return len(p), nil
}

var errNonZero = errors.New("non-zero byte")

// zeroWriter accepts only zero bytes.
type zeroWriter struct{}

func (zeroWriter) Write(p []byte) (int, error) {
	for i, b := range p {
		if b != 0 {
			return i, errNonZero
		}
	}
	return len(p), nil
}
