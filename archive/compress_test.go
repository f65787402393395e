package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// zstdSnapshot stores a copy of slug's snapshot whose layers are zstd, as
// another tool would have written it, tagged as zslug.
func zstdSnapshot(t *testing.T, e *env, slug, zslug string) v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	s := e.m.Store
	d, err := s.Resolve(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := s.ReadBlob(ctx, d.Digest, oci.MaxManifestSize)
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		f, err := s.Blob(ctx, l.Digest)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := pgzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		zw, _ := zstd.NewWriter(&buf)
		if _, err := io.Copy(zw, zr); err != nil {
			t.Fatal(err)
		}
		zw.Close()
		f.Close()
		nd, err := s.PutBytes(ctx, types.OCILayerZStd, buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		m.Layers[i] = nd
	}
	m.Annotations[oci.SlugAnnotation] = zslug
	nb, _ := json.Marshal(m)
	nd, err := s.PutBytes(ctx, types.OCIManifestSchema1, nb)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, zslug, nd); err != nil {
		t.Fatal(err)
	}
	return nd
}

func TestExportZstdAsGzip(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	src := sourceTree(t, 128<<10)
	res := e.commit(t, "demo", src)
	zd := zstdSnapshot(t, e, "demo", "zdemo")

	var asStored, gz bytes.Buffer
	if _, err := archive.Export(ctx, e.m.Store, &asStored, []string{"zdemo"}, archive.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := archive.Export(ctx, e.m.Store, &gz, []string{"zdemo"}, archive.ExportOptions{Compression: archive.CompressionGzip})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Converted) != 1 || r.Images[0].Digest == zd.Digest.String() {
		t.Fatalf("export result %+v: want zdemo converted to a new manifest", r)
	}
	files := map[string][]byte{}
	for _, x := range entries(t, gz.Bytes()) {
		files[x.hdr.Name] = x.data
	}
	var legacy []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(files["manifest.json"], &legacy); err != nil || len(legacy) != 1 {
		t.Fatalf("manifest.json %s: %v", files["manifest.json"], err)
	}
	if legacy[0].Config != archive.BlobsDir+res.Snapshot.Config.Digest.Hex {
		t.Errorf("config %s, want the unchanged %s", legacy[0].Config, res.Snapshot.Config.Digest)
	}
	for _, l := range legacy[0].Layers {
		if b := files[l]; len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("layer %s is not gzip", l)
		}
	}
	var m v1.Manifest
	if err := json.Unmarshal(files[archive.BlobsDir+r.Images[0].Digest[len("sha256:"):]], &m); err != nil {
		t.Fatal(err)
	}
	if m.Layers[0].MediaType != types.OCILayer || m.Annotations[oci.SlugAnnotation] != "zdemo" {
		t.Errorf("converted manifest %+v", m)
	}
	// The same snapshot exported again gives the same bytes.
	var again bytes.Buffer
	if _, err := archive.Export(ctx, e.m.Store, &again, []string{"zdemo"}, archive.ExportOptions{Compression: archive.CompressionGzip}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), gz.Bytes()) {
		t.Error("two gzip exports of the same zstd snapshot differ")
	}

	// Both archives import, and resume gives the committed tree.
	for name, b := range map[string][]byte{"as stored": asStored.Bytes(), "gzip": gz.Bytes()} {
		h := newEnv(t)
		if _, err := h.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{Backend: bottle.Dir}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		dst := filepath.Join(t.TempDir(), "rootfs")
		if _, err := h.m.Resume(ctx, "zdemo", resumeInto(dst)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sameTree(t, src, dst)
	}
	if _, err := archive.Export(ctx, e.m.Store, io.Discard, []string{"zdemo"}, archive.ExportOptions{Compression: "brotli"}); err == nil {
		t.Error("unknown compression accepted")
	}
}

// A gzip snapshot exported with --compression zstd: zstd layers whose
// config and diffIDs are the stored ones, which skopeo decompresses to
// those diffIDs and bb import reads back; the second export reuses the
// converted copy the first left in the store.
func TestExportGzipAsZstd(t *testing.T) {
	ctx := context.Background()
	needTool(t, "skopeo")
	e := newEnv(t)
	src := sourceTree(t, 128<<10)
	res := e.commit(t, "zexp", src)
	dir := t.TempDir()
	file := filepath.Join(dir, "z.tar")
	r, err := archive.ExportFile(ctx, e.m.Store, file, []string{"zexp"}, archive.ExportOptions{Compression: archive.CompressionZstd})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Converted) != 1 || r.Images[0].Digest == res.Snapshot.Manifest.Digest.String() {
		t.Fatalf("export result %+v: want zexp converted", r)
	}
	blobs := func() int {
		es, _ := os.ReadDir(filepath.Join(e.m.Store.Root(), "blobs", "sha256"))
		return len(es)
	}
	n := blobs()
	file2 := filepath.Join(dir, "z2.tar")
	r2, err := archive.ExportFile(ctx, e.m.Store, file2, []string{"zexp"}, archive.ExportOptions{Compression: archive.CompressionZstd})
	if err != nil || r2.Images[0].Digest != r.Images[0].Digest || blobs() != n {
		t.Fatalf("second export %+v, %v: %d new blobs", r2, err, blobs()-n)
	}
	a, _ := os.ReadFile(file)
	b, _ := os.ReadFile(file2)
	if !bytes.Equal(a, b) {
		t.Error("two zstd exports of the same snapshot differ")
	}
	var m v1.Manifest
	files := map[string][]byte{}
	for _, x := range entries(t, a) {
		files[x.hdr.Name] = x.data
	}
	if err := json.Unmarshal(files[archive.BlobsDir+r.Images[0].Digest[len("sha256:"):]], &m); err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != res.Snapshot.Config.Digest || m.Layers[0].MediaType != types.OCILayerZStd {
		t.Fatalf("exported manifest %+v", m)
	}
	if l := files[archive.BlobsDir+m.Layers[0].Digest.Hex]; len(l) < 4 || l[0] != 0x28 || l[1] != 0xb5 {
		t.Fatal("exported layer is not zstd")
	}
	// skopeo reads and decompresses it: the layer comes out as its diffID.
	out := filepath.Join(dir, "skopeo")
	run(t, "skopeo", "copy", "-q", "--dest-decompress", "oci-archive:"+file, "dir:"+out)
	cb, _ := e.m.Store.ReadBlob(ctx, res.Snapshot.Config.Digest, oci.MaxConfigSize)
	var cfg v1.ConfigFile
	if err := json.Unmarshal(cb, &cfg); err != nil {
		t.Fatal(err)
	}
	for _, d := range cfg.RootFS.DiffIDs {
		got, err := os.ReadFile(filepath.Join(out, d.Hex))
		if err != nil {
			t.Fatalf("skopeo did not write layer %s: %v", d, err)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(got)); h != d {
			t.Fatalf("skopeo decompressed the layer to %s, want %s", h, d)
		}
	}
	// bb import reads it back; resume gives the committed tree.
	h := newEnv(t)
	if _, err := h.m.Import(ctx, bytes.NewReader(a), bottle.ImportOptions{Backend: bottle.Dir}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	if _, err := h.m.Resume(ctx, "zexp", resumeInto(dst)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
}
