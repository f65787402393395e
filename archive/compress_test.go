package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
