package pack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

const (
	whiteoutPrefix = layer.WhiteoutPrefix
	opaqueWhiteout = layer.OpaqueWhiteout
)

// Plain, as layer.Options.Compression of Flatten, writes the flattened
// layer as a plain tar (media type application/vnd.oci.image.layer.v1.tar):
// nothing is compressed, so the flatten costs what reading the chain
// costs. smolvm 1.9.3 picks a layer's decompressor by its first bytes and
// unpacks anything but gzip and zstd as a plain tar
// (crates/smolvm-oci-layer/src/lib.rs:167-200, decompress_layer_reader),
// so its pull skips the gunzip too; the layer is about twice as large on
// disk and on the loopback while the pack runs.
const Plain = layer.None

// Flattened is a single-layer image Flatten wrote into the store.
type Flattened struct {
	Manifest v1.Descriptor
	// NewBlobs are the blobs Flatten added (nothing references them: the
	// caller discards them when it is done).
	NewBlobs []v1.Hash
	// Copied counts the bytes of the layers' tars whose compressed bytes
	// were reused, Recompressed those of gzip layers compressed again
	// (see stitch.go); a layer above the first that is not gzip is
	// compressed again and counted in neither.
	Copied, Recompressed int64
}

// Flatten merges the layers of the image manifest (in s) into one layer
// and writes a single-layer image of it into s, untagged. Whiteouts are
// applied the way an overlay applies them: a ".wh.NAME" entry hides NAME
// (and what is below it) in the layers beneath, ".wh..wh..opq" hides a
// directory's contents beneath, and an entry hides the same path beneath
// (and, unless both are directories, what is below it). Each path keeps
// only its last header.
//
// The upper layers (all but the first, small for an incremental chain)
// are read twice, once to learn what they hide and once to copy them;
// memory holds their paths, not the first layer's. When the first layer
// is gzip, as bb writes it, and the output is gzip too, the compressed
// blocks of every gzip layer that lose nothing are copied as they are and
// only the rest is compressed again (stitch.go); otherwise the merged tar
// is compressed whole (pgzip, all cores).
func Flatten(ctx context.Context, s *oci.Store, manifest v1.Hash, opts layer.Options) (*Flattened, error) {
	return FlattenTee(ctx, s, manifest, opts, nil)
}

// FlattenTee is Flatten that also writes the flattened layer's
// uncompressed tar to tee as it makes it, so that a caller that needs it
// does not decompress the chain again. When FlattenTee returns without
// error, tee has received the whole tar; an error of tee's is ignored
// (tee stops receiving).
func FlattenTee(ctx context.Context, s *oci.Store, manifest v1.Hash, opts layer.Options, tee io.Writer) (*Flattened, error) {
	man, err := s.Manifest(ctx, v1.Descriptor{Digest: manifest})
	if err != nil {
		return nil, err
	}
	cfg, err := s.Config(ctx, man.Config.Digest)
	if err != nil {
		return nil, err
	}
	if tee != nil {
		tee = &iox.TeeWriter{W: tee}
	}
	fl, err := flatLayer(ctx, s, manifest, opts, tee)
	if err != nil {
		return nil, fmt.Errorf("flattening %s: %w", manifest, err)
	}
	out := &Flattened{Copied: fl.copied, Recompressed: fl.recompressed}
	if fl.created {
		out.NewBlobs = append(out.NewBlobs, fl.desc.Digest)
	}
	fail := func(err error) (*Flattened, error) {
		_ = s.Discard(context.WithoutCancel(ctx), out.NewBlobs)
		return nil, err
	}
	nlayers := fl.nlayers
	diffID := fl.diffID
	cfg.RootFS.DiffIDs = []v1.Hash{diffID}
	created := cfg.Created
	cfg.History = []v1.History{{Created: created, CreatedBy: fmt.Sprintf("bb: %d layers of %s flattened", nlayers, manifest)}}
	ncb, err := json.Marshal(cfg)
	if err != nil {
		return fail(err)
	}
	put := func(mt types.MediaType, b []byte) (v1.Descriptor, error) {
		h, _, _ := v1.SHA256(bytes.NewReader(b))
		_, statErr := s.Stat(ctx, h)
		d, err := s.PutBytes(ctx, mt, b)
		if err == nil && statErr != nil {
			out.NewBlobs = append(out.NewBlobs, d.Digest)
		}
		return d, err
	}
	cd, err := put(man.Config.MediaType, ncb)
	if err != nil {
		return fail(err)
	}
	nm := *man
	nm.Config = cd
	nm.Layers = []v1.Descriptor{fl.desc}
	nmb, err := json.Marshal(&nm)
	if err != nil {
		return fail(err)
	}
	mt := man.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	out.Manifest, err = put(mt, nmb)
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// Merged streams the uncompressed tar of the image manifest's layers
// merged into one (see Flatten), and returns how many layers it merges.
// The stream ends with an error if a layer cannot be read or merged.
func Merged(ctx context.Context, s *oci.Store, manifest v1.Hash) (io.ReadCloser, int, error) {
	f, layers, err := newFlattener(ctx, s, manifest)
	if err != nil {
		return nil, 0, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(f.merge(ctx, layers, pw))
	}()
	return pr, len(layers), nil
}

// newFlattener reads what the upper layers of the image manifest hide.
func newFlattener(ctx context.Context, s *oci.Store, manifest v1.Hash) (*flattener, []v1.Layer, error) {
	img, err := s.Image(ctx, manifest)
	if err != nil {
		return nil, nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, nil, err
	}
	f := &flattener{marks: map[string]*mark{}}
	for i := 1; i < len(layers); i++ {
		if err := f.scan(ctx, layers[i], i); err != nil {
			return nil, nil, fmt.Errorf("reading layer %d of %s: %w", i, manifest, err)
		}
	}
	return f, layers, nil
}

// flat is the flattened layer written into the store.
type flat struct {
	desc                 v1.Descriptor
	diffID               v1.Hash
	created              bool
	nlayers              int
	copied, recompressed int64
}

// flatLayer writes the merged layers of manifest into s as one layer:
// stitched from the first layer's compressed blocks when it is gzip and
// the output is too, else compressed whole.
func flatLayer(ctx context.Context, s *oci.Store, manifest v1.Hash, opts layer.Options, tee io.Writer) (*flat, error) {
	f, layers, err := newFlattener(ctx, s, manifest)
	if err != nil {
		return nil, err
	}
	if opts.Compression == Plain {
		return plainLayer(ctx, s, f, layers, tee)
	}
	if len(layers) > 0 && (opts.Compression == "" || opts.Compression == layer.Gzip) && isGzip(layers[0]) {
		fl, err := f.stitch(ctx, s, layers, opts.Level, tee)
		if err == nil {
			fl.nlayers = len(layers)
			return fl, nil
		}
		if !errors.Is(err, errNoStitch) {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(f.merge(ctx, layers, pw))
	}()
	defer pr.Close()
	var r io.Reader = pr
	if tee != nil {
		r = io.TeeReader(pr, tee)
	}
	lyr, err := layer.Write(ctx, s, r, opts)
	if err != nil {
		return nil, err
	}
	diffID, _ := lyr.DiffID()
	return &flat{desc: lyr.Descriptor(), diffID: diffID, created: lyr.Created(), nlayers: len(layers)}, nil
}

// plainLayer writes the merged layers into s as a plain tar: its digest
// is its diffID.
func plainLayer(ctx context.Context, s *oci.Store, f *flattener, layers []v1.Layer, tee io.Writer) (*flat, error) {
	w, err := s.NewWriter(ctx)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	var dst io.Writer = w
	if tee != nil {
		dst = io.MultiWriter(w, tee)
	}
	if err := f.merge(ctx, layers, dst); err != nil {
		return nil, err
	}
	digest, size, err := w.Commit(ctx, v1.Hash{}, -1)
	if err != nil {
		return nil, err
	}
	return &flat{
		desc:   v1.Descriptor{MediaType: types.OCIUncompressedLayer, Digest: digest, Size: size},
		diffID: digest, created: w.Created(), nlayers: len(layers),
	}, nil
}

// isGzip reports whether layer l's blob is gzip (by its first bytes).
func isGzip(l v1.Layer) bool {
	rc, err := l.Compressed()
	if err != nil {
		return false
	}
	defer rc.Close()
	var head [2]byte
	_, err = io.ReadFull(rc, head[:])
	return err == nil && head[0] == 0x1f && head[1] == 0x8b
}

// mark records, per path, the highest layer that has it as a
// non-directory, as a directory, a whiteout of it, an opaque whiteout in
// it (0: none; the first layer hides nothing).
type mark struct {
	nondir, dir, whiteout, opaque int
}

type flattener struct {
	marks map[string]*mark
}

func (f *flattener) get(p string) *mark {
	m := f.marks[p]
	if m == nil {
		m = &mark{}
		f.marks[p] = m
	}
	return m
}

func clean(n string) string { return strings.TrimPrefix(path.Clean("/"+n), "/") }

func (f *flattener) scan(ctx context.Context, l v1.Layer, i int) error {
	return eachEntry(ctx, l, func(h *tar.Header, name string, _ *tar.Reader) error {
		dir, base := path.Split(name)
		dir = clean(dir)
		switch {
		case base == opaqueWhiteout:
			f.get(dir).opaque = i
		case strings.HasPrefix(base, whiteoutPrefix):
			f.get(path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))).whiteout = i
		case h.Typeflag == tar.TypeDir:
			f.get(name).dir = i
		default:
			f.get(name).nondir = i
		}
		return nil
	})
}

// eachEntry calls fn for every entry of layer l with a non-empty name,
// with that name cleaned.
func eachEntry(ctx context.Context, l v1.Layer, fn func(h *tar.Header, name string, tr *tar.Reader) error) error {
	rc, err := uncompressed(l)
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(bufio.NewReaderSize(rc, 256<<10))
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := clean(h.Name)
		if name == "" {
			continue
		}
		if err := fn(h, name, tr); err != nil {
			return err
		}
	}
}

// keep reports whether the entry name (cleaned) of layer j goes into the
// flattened layer: it is no whiteout and no layer above hides it. A hard
// link to a path a layer above replaces is an error.
func (f *flattener) keep(j int, name string, h *tar.Header) (bool, error) {
	if name == "" || strings.HasPrefix(path.Base(name), whiteoutPrefix) || f.hidden(j, name) {
		return false, nil
	}
	if h.Typeflag == tar.TypeLink {
		if t := clean(h.Linkname); f.hidden(j, t) {
			return false, fmt.Errorf("hard link %s points to %s, which a later layer replaces: this chain cannot be flattened without a copy of the file", name, t)
		}
	}
	return true, nil
}

// hidden reports whether an entry of layer j is hidden by a higher layer.
func (f *flattener) hidden(j int, name string) bool {
	if m := f.marks[name]; m != nil {
		// A directory of a later layer replaces this one's header too:
		// one header per path, so every extractor ends with the same
		// metadata.
		if m.whiteout > j || m.nondir > j || m.dir > j {
			return true
		}
	}
	for a := path.Dir(name); a != "." && a != "/"; a = path.Dir(a) {
		if m := f.marks[a]; m != nil && (m.whiteout > j || m.opaque > j || m.nondir > j) {
			return true
		}
	}
	return false
}

func (f *flattener) merge(ctx context.Context, layers []v1.Layer, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	for j, l := range layers {
		if err := f.copyLayer(ctx, l, j, tw); err != nil {
			return fmt.Errorf("layer %d: %w", j, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return bw.Flush()
}

func (f *flattener) copyLayer(ctx context.Context, l v1.Layer, j int, tw *tar.Writer) error {
	return eachEntry(ctx, l, func(h *tar.Header, name string, tr *tar.Reader) error {
		if keep, err := f.keep(j, name, h); !keep {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		return nil
	})
}

// uncompressed opens a layer's tar, decompressing gzip with pgzip (which
// decompresses ahead of the reader on another core) and zstd with
// klauspost's decoder.
func uncompressed(l v1.Layer) (io.ReadCloser, error) {
	rc, err := l.Compressed()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(rc, 64<<10)
	head, _ := br.Peek(4)
	closeBoth := func(r io.Reader, c func()) io.ReadCloser {
		return struct {
			io.Reader
			io.Closer
		}{r, closerFunc(func() error { c(); return rc.Close() })}
	}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		zr, err := pgzip.NewReaderN(br, 1<<20, 4)
		if err != nil {
			rc.Close()
			return nil, err
		}
		return closeBoth(zr, func() { zr.Close() }), nil
	case len(head) == 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(layer.MaxZstdWindow))
		if err != nil {
			rc.Close()
			return nil, err
		}
		return closeBoth(zr, zr.Close), nil
	}
	return closeBoth(br, func() {}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
