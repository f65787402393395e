package pack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type tentry struct {
	name, link string
	typ        byte
	mode       int64
	data       []byte
}

func tarOf(t *testing.T, es []tentry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// image puts an image of the given (compressed) layers into s.
func image(t *testing.T, s *oci.Store, tars, blobs [][]byte) v1.Hash {
	t.Helper()
	ctx := context.Background()
	cfg := v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers"}}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1}
	for i, b := range blobs {
		d, err := s.PutBytes(ctx, types.OCILayer, b)
		if err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, d)
		h, _, _ := v1.SHA256(bytes.NewReader(tars[i]))
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
	}
	cb, _ := json.Marshal(cfg)
	cd, err := s.PutBytes(ctx, types.OCIConfigJSON, cb)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = cd
	mb, _ := json.Marshal(m)
	md, err := s.PutBytes(ctx, types.OCIManifestSchema1, mb)
	if err != nil {
		t.Fatal(err)
	}
	return md.Digest
}

// flattenedTar reads the flattened layer of fl (gzip: its trailer is
// checked), checks it against the config's diffID and the tee's copy,
// and returns it.
func flattenedTar(t *testing.T, s *oci.Store, fl *Flattened, tee []byte) []byte {
	t.Helper()
	img, err := s.Image(context.Background(), fl.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := img.Layers()
	cf, _ := img.ConfigFile()
	zb, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(zb)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr) // checks the trailer's CRC-32 and size
	zb.Close()
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := v1.SHA256(bytes.NewReader(raw)); h != cf.RootFS.DiffIDs[0] {
		t.Fatalf("layer decompresses to %s, config says %s", h, cf.RootFS.DiffIDs[0])
	}
	if !bytes.Equal(raw, tee) {
		t.Fatalf("tee got %d bytes that differ from the layer's %d", len(tee), len(raw))
	}
	return raw
}

func pgz(t *testing.T, s *oci.Store, tb []byte) []byte {
	t.Helper()
	ctx := context.Background()
	l, err := layer.Write(ctx, s, bytes.NewReader(tb), layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.ReadBlob(ctx, l.Descriptor().Digest, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(t *testing.T, parts ...[]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts {
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// listing describes a tar's entries (name, type, mode, link, content).
func listing(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d := sha256.New()
		if _, err := io.Copy(d, tr); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %c %o %s %x", clean(h.Name), h.Typeflag, h.Mode, h.Linkname, d.Sum(nil)[:6]))
	}
}

// TestStitchMatchesMerge: whatever the first layer's gzip looks like
// (pgzip's blocks, one plain member, several members), the stitched
// layer holds exactly the entries of the merged chain, its diffID and
// gzip trailer are right, and the tee got the same tar.
func TestStitchMatchesMerge(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	blob := func(n int, text bool) []byte {
		b := make([]byte, n)
		for i := range b {
			if text {
				b[i] = "ab cd\n"[r.IntN(6)]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		return b
	}
	var base []tentry
	base = append(base, tentry{name: "./", typ: tar.TypeDir, mode: 0o755})
	for d := range 4 {
		base = append(base, tentry{name: fmt.Sprintf("d%d/", d), typ: tar.TypeDir, mode: 0o755})
		for f := range 60 {
			base = append(base, tentry{name: fmt.Sprintf("d%d/f%02d", d, f), typ: tar.TypeReg, mode: 0o644, data: blob(1000+r.IntN(9000), true)})
		}
		base = append(base, tentry{name: fmt.Sprintf("d%d/big", d), typ: tar.TypeReg, mode: 0o755, data: blob(1<<20+r.IntN(1<<19), false)})
	}
	base = append(base,
		tentry{name: "d0/hl", typ: tar.TypeLink, link: "d0/f01"},
		tentry{name: "d1/sym", typ: tar.TypeSymlink, link: "f03", mode: 0o777},
		tentry{name: "gone/", typ: tar.TypeDir, mode: 0o755},
		tentry{name: "gone/x", typ: tar.TypeReg, mode: 0o644, data: blob(70000, true)},
	)
	upper := []tentry{
		{name: "d0/", typ: tar.TypeDir, mode: 0o700},
		{name: "d0/f05", typ: tar.TypeReg, mode: 0o600, data: []byte("rewritten")},
		{name: "d1/.wh.big", typ: tar.TypeReg},
		{name: "d2/.wh.f10", typ: tar.TypeReg},
		{name: ".wh.gone", typ: tar.TypeReg},
		{name: "d3/.wh..wh..opq", typ: tar.TypeReg},
		{name: "d3/", typ: tar.TypeDir, mode: 0o755},
		{name: "d3/only", typ: tar.TypeReg, mode: 0o644, data: []byte("alone")},
		{name: "new/n", typ: tar.TypeReg, mode: 0o644, data: blob(5000, true)},
	}
	bt, ut := tarOf(t, base), tarOf(t, upper)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		base      func(s *oci.Store) []byte
		minCopied int64
	}{
		{"pgzip", func(s *oci.Store) []byte { return pgz(t, s, bt) }, 1 << 20},
		{"one member", func(*oci.Store) []byte { return gz(t, bt) }, 0},
		{"members", func(*oci.Store) []byte { return gz(t, bt[:len(bt)/3], bt[len(bt)/3:]) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
			if err != nil {
				t.Fatal(err)
			}
			m := image(t, s, [][]byte{bt, ut}, [][]byte{tc.base(s), pgz(t, s, ut)})
			rc, _, err := Merged(ctx, s, m)
			if err != nil {
				t.Fatal(err)
			}
			want := listing(t, rc)
			rc.Close()
			var tee bytes.Buffer
			fl, err := FlattenTee(ctx, s, m, layer.Options{}, &tee)
			if err != nil {
				t.Fatal(err)
			}
			if fl.Copied < tc.minCopied {
				t.Errorf("copied %d bytes, want at least %d", fl.Copied, tc.minCopied)
			}
			raw := flattenedTar(t, s, fl, tee.Bytes())
			got := listing(t, bytes.NewReader(raw))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("stitched entries differ from the merge:\ngot  %q\nwant %q", got, want)
			}
		})
	}
}

// TestStitchUpperLayers: the compressed blocks of the layers above the
// first are copied too, whatever a higher layer hides in them, and a
// layer that is not gzip between them (compressed again entry by entry)
// leaves the stitched tar equal to the merge.
func TestStitchUpperLayers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	blob := func(n int, text bool) []byte {
		b := make([]byte, n)
		for i := range b {
			if text {
				b[i] = "ef gh\n"[r.IntN(6)]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		return b
	}
	base := []tentry{
		{name: "a/", typ: tar.TypeDir, mode: 0o755},
		{name: "a/keep", typ: tar.TypeReg, mode: 0o644, data: blob(3000, true)},
		{name: "a/old", typ: tar.TypeReg, mode: 0o644, data: blob(4000, true)},
		{name: "b/", typ: tar.TypeDir, mode: 0o755},
		{name: "b/x", typ: tar.TypeReg, mode: 0o644, data: blob(2000, true)},
	}
	// Layer 1: several blocks, with whiteouts of the base between them.
	var l1 []tentry
	l1 = append(l1, tentry{name: "a/.wh.old", typ: tar.TypeReg}, tentry{name: "w/", typ: tar.TypeDir, mode: 0o755})
	for i := range 8 {
		l1 = append(l1, tentry{name: fmt.Sprintf("w/bin%d", i), typ: tar.TypeReg, mode: 0o755, data: blob(700<<10, false)})
		for k := range 30 {
			l1 = append(l1, tentry{name: fmt.Sprintf("w/s%d/f%02d", i, k), typ: tar.TypeReg, mode: 0o644, data: blob(1000+r.IntN(5000), true)})
		}
	}
	l1 = append(l1, tentry{name: "w/hl", typ: tar.TypeLink, link: "w/s0/f01"}, tentry{name: ".wh.b", typ: tar.TypeReg})
	// Layer 2, not gzip: rewrites and deletes entries of layer 1.
	l2 := []tentry{
		{name: "w/s0/f03", typ: tar.TypeReg, mode: 0o600, data: []byte("rewritten in an uncompressed layer")},
		{name: "w/s0/.wh.f07", typ: tar.TypeReg},
	}
	// Layer 3, gzip: hides more of layer 1 and adds.
	l3 := []tentry{
		{name: "w/.wh.bin7", typ: tar.TypeReg},
		{name: "w/s7/.wh..wh..opq", typ: tar.TypeReg},
		{name: "w/s7/", typ: tar.TypeDir, mode: 0o700},
		{name: "w/s7/only", typ: tar.TypeReg, mode: 0o644, data: []byte("alone")},
		{name: "b/", typ: tar.TypeDir, mode: 0o755},
		{name: "b/y", typ: tar.TypeReg, mode: 0o644, data: blob(3000, true)},
	}
	tars := [][]byte{tarOf(t, base), tarOf(t, l1), tarOf(t, l2), tarOf(t, l3)}
	ctx := context.Background()
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m := image(t, s, tars, [][]byte{pgz(t, s, tars[0]), pgz(t, s, tars[1]), tars[2], pgz(t, s, tars[3])})
	rc, _, err := Merged(ctx, s, m)
	if err != nil {
		t.Fatal(err)
	}
	want := listing(t, rc)
	rc.Close()
	var tee bytes.Buffer
	fl, err := FlattenTee(ctx, s, m, layer.Options{}, &tee)
	if err != nil {
		t.Fatal(err)
	}
	// The base is one partial block (compressed again): what was copied
	// comes from layer 1.
	if fl.Copied < 1<<20 {
		t.Errorf("copied %d bytes, want layer 1's untouched blocks (at least 1 MiB)", fl.Copied)
	}
	raw := flattenedTar(t, s, fl, tee.Bytes())
	if got := listing(t, bytes.NewReader(raw)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stitched entries differ from the merge:\ngot  %q\nwant %q", got, want)
	}
	// One end-of-archive, at the end.
	if n := len(raw); n%512 != 0 || !bytes.Equal(raw[n-1024:], make([]byte, 1024)) {
		t.Errorf("the stitched tar does not end with its end-of-archive blocks")
	}
}
