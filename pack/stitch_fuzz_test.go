package pack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
)

// fzInput hands out the fuzzer's bytes; past their end it gives zeros.
type fzInput struct {
	b []byte
	i int
}

func (in *fzInput) next() byte {
	if in.i >= len(in.b) {
		return 0
	}
	in.i++
	return in.b[in.i-1]
}

func (in *fzInput) intn(n int) int { return int(in.next()) % n }

// fzName is a path of up to three components from a small set, so that
// entries of the layers meet: the same paths, their parents, whiteouts.
func (in *fzInput) fzName() string {
	comps := []string{"a", "b", "c", "d", "e"}
	parts := make([]string, 1+in.intn(3))
	for i := range parts {
		parts[i] = comps[in.intn(len(comps))]
	}
	return strings.Join(parts, "/")
}

// fzData is size bytes of zeros, text or noise (incompressible: gzip
// stores it), from a seed of the input. Text repeats every 64 KiB, past
// deflate's window, so it compresses as text does.
func (in *fzInput) fzData(size int) []byte {
	kind, seed := in.intn(3), in.next()
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{seed, byte(size), byte(size >> 8), byte(size >> 16)})
	switch kind {
	case 1:
		chunk := make([]byte, min(size, 64<<10))
		_, _ = r.Read(chunk)
		for i := range chunk {
			chunk[i] = "ab cd\n"[chunk[i]%6]
		}
		for i := 0; i < size; i += len(chunk) {
			copy(b[i:], chunk)
		}
	case 2:
		_, _ = r.Read(b)
	}
	return b
}

// fzTar is a layer's tar from the input: files (up to maxData bytes in
// all), directories, symlinks, hard links to earlier files, whiteouts and
// opaque whiteouts, at paths that collide on purpose.
func (in *fzInput) fzTar(t *testing.T, entries, maxData int) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	var files []string
	total := 0
	mtime := time.Unix(1700000000+int64(in.next()), 0)
	for range entries {
		name := in.fzName()
		h := &tar.Header{Name: name, Mode: 0o644, ModTime: mtime, Uid: in.intn(3), Format: tar.FormatPAX}
		var data []byte
		switch in.intn(8) {
		case 0, 1, 2:
			size := int(in.next()) * (1 + in.intn(64)) * 64
			size = min(size, maxData-total)
			total += size
			data = in.fzData(size)
			h.Typeflag, h.Size = tar.TypeReg, int64(size)
			files = append(files, name)
		case 3:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, name+"/", 0o755
		case 4:
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, in.fzName(), 0o777
		case 5:
			if len(files) == 0 {
				continue
			}
			h.Typeflag, h.Linkname = tar.TypeLink, files[in.intn(len(files))]
		case 6:
			dir, base := filepath.Split(name)
			h.Typeflag, h.Name = tar.TypeReg, dir+layer.WhiteoutPrefix+base
		case 7:
			h.Typeflag, h.Name = tar.TypeReg, name+"/"+layer.OpaqueWhiteout
		}
		if in.intn(4) == 0 {
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.fz": fmt.Sprint(in.next())}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fzCompress compresses a first layer the way bb does (layer.Write:
// pgzip, 1 MiB blocks cut by sync flushes) or as foreign tools do: one
// gzip member, several members, sync flushes elsewhere, pgzip with other
// block sizes and levels, or no compression at all.
func (in *fzInput) fzCompress(t *testing.T, s *oci.Store, tb []byte) []byte {
	t.Helper()
	ctx := context.Background()
	var b bytes.Buffer
	mode := in.intn(7)
	t.Logf("first layer: %d bytes of tar, compression %d", len(tb), mode)
	switch mode {
	case 0:
		l, err := layer.Write(ctx, s, bytes.NewReader(tb), layer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		blob, err := s.ReadBlob(ctx, l.Descriptor().Digest, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		return blob
	case 1, 2:
		cut := len(tb)
		if mode == 2 {
			cut = len(tb) * in.intn(256) / 256
		}
		for _, p := range [][]byte{tb[:cut], tb[cut:]} {
			zw, _ := gzip.NewWriterLevel(&b, 1+in.intn(9))
			_, _ = zw.Write(p)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			if mode == 1 {
				break
			}
		}
	case 3:
		// Sync flushes every step bytes, on 1 MiB boundaries or off them.
		step := 1 + int(in.next())*512
		if k := in.intn(4); k < 3 {
			step = []int{1 << 20, 1<<20 - 1, 64 << 10}[k]
		}
		zw, _ := kgzip.NewWriterLevel(&b, 1+in.intn(9))
		for p := tb; len(p) > 0; {
			n := min(step, len(p))
			_, _ = zw.Write(p[:n])
			if err := zw.Flush(); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case 4, 5:
		zw, _ := pgzip.NewWriterLevel(&b, 1+in.intn(9))
		block := 1 << 20
		if mode == 5 {
			block = 64 << 10
		}
		if err := zw.SetConcurrency(block, 2); err != nil {
			t.Fatal(err)
		}
		_, _ = zw.Write(tb)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case 6:
		return tb
	}
	return b.Bytes()
}

// fzTempDir is a temporary directory in /dev/shm where there is one:
// the store syncs every blob it writes, which on a disk costs more than
// the rest of an execution.
func fzTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("/dev/shm", "bb-fuzz-stitch-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// fzListing describes a tar's entries in order: every header field a
// layer's reader applies, and the content's hash.
func fzListing(r io.Reader) ([]string, error) {
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		d := sha256.New()
		if _, err := io.Copy(d, tr); err != nil {
			return out, err
		}
		out = append(out, fmt.Sprintf("%s %c %o %d:%d %d %q %d %v %x", clean(h.Name), h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size,
			h.Linkname, h.ModTime.Unix(), h.PAXRecords["SCHILY.xattr.user.fz"], d.Sum(nil)[:8]))
	}
}

// FuzzStitch: a chain of a first layer (bb's own gzip, or a foreign one)
// and one or two upper layers, built from the input, flattens by
// stitching to the same entries as the plain merge (Merged), in a layer
// of one gzip member whose CRC-32 and size check out, whose diffID is
// the config's and whose tar the tee saw; a chain the merge refuses is
// refused.
func FuzzStitch(f *testing.F) {
	// A first layer of three 1 MiB files and a small one, compressed in
	// each way fzCompress knows; an upper layer that replaces the third
	// file, whites a directory out and makes another one opaque.
	// (per entry: depth, components, uid, type, then the type's bytes)
	base := []byte{3, 0,
		0, 0, 0, 0, 255, 63, 1, 7, 1, // a: 1 MiB of text
		0, 1, 0, 0, 255, 63, 2, 9, 1, // b: 1 MiB of noise
		0, 2, 1, 0, 255, 63, 1, 3, 0, 5, // c: 1 MiB of text, uid 1, an xattr
		1, 3, 0, 0, 0, 100, 10, 0, 1, 1} // d/a: 70 KiB of zeros
	upper := []byte{0, 2, 1,
		0, 2, 0, 0, 10, 1, 1, 2, 1, // c again
		0, 3, 0, 6, 1, // .wh.d
		1, 3, 4, 0, 7, 1} // d/e/.wh..wh..opq
	for _, mode := range [][]byte{{0}, {2, 128, 0, 5}, {3, 0, 0, 0}, {3, 9, 3, 5}, {5, 0}} {
		f.Add(append(append(append([]byte{}, base...), mode...), upper...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := &fzInput{b: data}
		ctx := context.Background()
		s, err := oci.Open(filepath.Join(fzTempDir(t), "oci"))
		if err != nil {
			t.Fatal(err)
		}
		// The first layer holds up to 2.5 MiB: two of stitch's blocks and
		// part of a third.
		base := in.fzTar(t, 1+in.intn(16), 5<<19)
		tars := [][]byte{base}
		blobs := [][]byte{in.fzCompress(t, s, base)}
		for range 1 + in.intn(2) {
			up := in.fzTar(t, 1+in.intn(10), 64<<10)
			zw := &bytes.Buffer{}
			gw := gzip.NewWriter(zw)
			_, _ = gw.Write(up)
			if err := gw.Close(); err != nil {
				t.Fatal(err)
			}
			tars, blobs = append(tars, up), append(blobs, zw.Bytes())
		}
		m := image(t, s, tars, blobs)

		rc, _, err := Merged(ctx, s, m)
		if err != nil {
			t.Fatal(err)
		}
		want, mergeErr := fzListing(rc)
		rc.Close()
		var tee bytes.Buffer
		fl, err := FlattenTee(ctx, s, m, layer.Options{}, &tee)
		if mergeErr != nil {
			if err == nil {
				t.Fatalf("the merge fails (%v), the stitched flatten does not", mergeErr)
			}
			return
		}
		if err != nil {
			t.Fatalf("the merge works, the stitched flatten fails: %v", err)
		}
		t.Logf("%d-byte first layer: %d bytes copied, %d compressed again", len(base), fl.Copied, fl.Recompressed)
		if fl.Copied < 0 || fl.Recompressed < 0 || fl.Copied > int64(len(base)) {
			t.Errorf("copied %d, recompressed %d of a %d-byte first layer", fl.Copied, fl.Recompressed, len(base))
		}
		man, err := s.Manifest(ctx, fl.Manifest)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := s.Config(ctx, man.Config.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if len(man.Layers) != 1 || len(cfg.RootFS.DiffIDs) != 1 {
			t.Fatalf("%d layers, %d diffIDs", len(man.Layers), len(cfg.RootFS.DiffIDs))
		}
		blob, err := s.ReadBlob(ctx, man.Layers[0].Digest, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(blob)) != man.Layers[0].Size {
			t.Fatalf("layer blob of %d bytes, descriptor says %d", len(blob), man.Layers[0].Size)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(blob)); h != man.Layers[0].Digest {
			t.Fatalf("layer blob hashes to %s, descriptor says %s", h, man.Layers[0].Digest)
		}
		// One gzip member, whose trailer (CRC-32, size) the reader checks.
		zr, err := gzip.NewReader(bytes.NewReader(blob))
		if err != nil {
			t.Fatal(err)
		}
		zr.Multistream(false)
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatalf("the stitched layer does not decompress: %v", err)
		}
		if rest, _ := io.ReadAll(zr); len(rest) > 0 {
			t.Fatalf("%d bytes after the gzip member", len(rest))
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != cfg.RootFS.DiffIDs[0] {
			t.Fatalf("layer decompresses to %s, config says %s", h, cfg.RootFS.DiffIDs[0])
		}
		if !bytes.Equal(raw, tee.Bytes()) {
			t.Fatalf("tee got %d bytes that differ from the layer's %d", tee.Len(), len(raw))
		}
		got, err := fzListing(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("the stitched tar does not read: %v", err)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("stitched entries differ from the merge:\ngot\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
}
