package snapshot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func manifestOf(t *testing.T, s *oci.Store, h v1.Hash) *v1.Manifest {
	t.Helper()
	b, err := s.ReadBlob(context.Background(), h, oci.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func conversions(t *testing.T, s *oci.Store) map[string]v1.Descriptor {
	t.Helper()
	idx, err := s.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Descriptor{}
	for _, e := range idx.Manifests {
		if e.ArtifactType == snapshot.ConvertedArtifactType {
			out[e.Annotations["dev.bot-bottle.subject"]] = e
		}
	}
	return out
}

// A conversion is made once, recorded next to its snapshot, reused by
// the next call and by a snapshot that shares the layer, and goes with
// the snapshot.
func TestConvertRecordsReusesAndPrunes(t *testing.T) {
	ctx := context.Background()
	s, _ := oci.Open(t.TempDir())
	r1 := build(t, s, "conv", strings.Repeat("one ", 5000), time.Now().Add(-time.Minute))
	if err := snapshot.Publish(ctx, s, r1, -1); err != nil {
		t.Fatal(err)
	}
	r2, err := snapshot.Build(ctx, s, snapshot.Request{
		Slug: "conv", Backend: "dir", SourceName: "test", Source: files{"g": "two"},
		Base: snapshot.Base{Layers: []snapshot.LayerInfo{r1.Layer}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Publish(ctx, s, r2, -1); err != nil {
		t.Fatal(err)
	}

	c1, err := snapshot.Convert(ctx, s, r1.Manifest, layer.Zstd, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !c1.Converted || c1.Recompressed != 1 || c1.Source.Digest != r1.Manifest.Digest || c1.Manifest.Digest == r1.Manifest.Digest {
		t.Fatalf("first conversion %+v", c1)
	}
	m1 := manifestOf(t, s, c1.Manifest.Digest)
	if m1.Config.Digest != r1.Config.Digest || m1.Layers[0].MediaType != types.OCILayerZStd || m1.Annotations[oci.SlugAnnotation] != "conv" {
		t.Fatalf("converted manifest %+v", m1)
	}
	if err := s.Complete(ctx, c1.Manifest); err != nil {
		t.Fatal(err)
	}
	again, err := snapshot.Convert(ctx, s, r1.Manifest, layer.Zstd, layer.Options{})
	if err != nil || again.Manifest.Digest != c1.Manifest.Digest || again.Recompressed != 0 {
		t.Fatalf("second conversion %+v, %v: want the recorded copy", again, err)
	}
	c2, err := snapshot.Convert(ctx, s, r2.Manifest, layer.Zstd, layer.Options{})
	if err != nil || c2.Recompressed != 1 || c2.Reused != 1 {
		t.Fatalf("conversion of the chain %+v, %v: want the shared layer reused", c2, err)
	}
	if m2 := manifestOf(t, s, c2.Manifest.Digest); m2.Layers[0].Digest != m1.Layers[0].Digest {
		t.Fatalf("shared layer converted twice: %s, %s", m2.Layers[0].Digest, m1.Layers[0].Digest)
	}
	// Nothing to do: already zstd, or already gzip.
	for _, c := range []struct {
		d  v1.Descriptor
		to layer.Compression
	}{{c1.Manifest, layer.Zstd}, {r1.Manifest, layer.Gzip}} {
		n, err := snapshot.Convert(ctx, s, c.d, c.to, layer.Options{})
		if err != nil || n.Converted || n.Manifest.Digest != c.d.Digest {
			t.Fatalf("%s as %s: %+v, %v", c.d.Digest, c.to, n, err)
		}
	}
	// The slug's tags and history are untouched.
	if cur, _ := s.Resolve(ctx, "conv"); cur.Digest != r2.Manifest.Digest {
		t.Fatalf("slug tag moved to %s", cur.Digest)
	}
	if es, _ := snapshot.List(ctx, s, "conv"); len(es) != 2 {
		t.Fatalf("history %+v", es)
	}
	if got := conversions(t, s); len(got) != 2 {
		t.Fatalf("recorded conversions %+v", got)
	}
	// gc keeps the recorded copies, however old their blobs.
	age(t, s)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*snapshot.Conversion{c1, c2} {
		if err := s.Complete(ctx, c.Manifest); err != nil {
			t.Fatalf("gc removed part of a converted copy: %v", err)
		}
	}
	// Pruning r1 drops its copy; r2's stays (and keeps the shared layer);
	// gc then removes what only r1's copy used.
	if err := snapshot.Prune(ctx, s, "conv", 0); err != nil {
		t.Fatal(err)
	}
	got := conversions(t, s)
	if _, ok := got[r1.Manifest.Digest.String()]; ok || len(got) != 1 {
		t.Fatalf("after prune: %+v", got)
	}
	age(t, s)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, c2.Manifest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, c1.Manifest.Digest); err == nil {
		t.Fatal("the pruned snapshot's converted manifest outlived gc")
	}
}

// age makes every blob older than gc's grace period.
func age(t *testing.T, s *oci.Store) {
	t.Helper()
	old := time.Now().Add(-2 * oci.GCGrace)
	dir := filepath.Join(s.Root(), "blobs", "sha256")
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := os.Chtimes(filepath.Join(dir, e.Name()), old, old); err != nil {
			t.Fatal(err)
		}
	}
}

// A layer whose bytes do not decompress to the config's diffID is
// refused and leaves nothing in the store.
func TestRecompressChecksDiffIDAndDigest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := oci.Open(root)
	r := build(t, s, "bad", "content", time.Now())
	l := r.Manifest
	m := manifestOf(t, s, l.Digest)
	blobs := func() int {
		es, _ := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
		return len(es)
	}
	before := blobs()
	wrong := r.Layer.Digest // a sha256 that is not the diffID
	if _, err := layer.Recompress(ctx, s, m.Layers[0], wrong, layer.Zstd, layer.Options{}); err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Fatalf("wrong diffID: %v", err)
	}
	short := m.Layers[0]
	short.Size--
	if _, err := layer.Recompress(ctx, s, short, r.Layer.DiffID, layer.Zstd, layer.Options{}); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("wrong size: %v", err)
	}
	if n := blobs(); n != before {
		t.Fatalf("refused recompressions left %d blobs", n-before)
	}
	ok, err := layer.Recompress(ctx, s, m.Layers[0], r.Layer.DiffID, layer.Zstd, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := ok.DiffID(); d != r.Layer.DiffID {
		t.Fatalf("diffID %s, want %s", d, r.Layer.DiffID)
	}
}

// A Docker schema 2 manifest converted to zstd becomes an OCI manifest.
func TestConvertDockerManifestToZstd(t *testing.T) {
	ctx := context.Background()
	s, _ := oci.Open(t.TempDir())
	r := build(t, s, "dock", "content", time.Now())
	b, _ := s.ReadBlob(ctx, r.Manifest.Digest, oci.MaxManifestSize)
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	raw["mediaType"] = string(types.DockerManifestSchema2)
	raw["config"].(map[string]any)["mediaType"] = string(types.DockerConfigJSON)
	for _, l := range raw["layers"].([]any) {
		l.(map[string]any)["mediaType"] = string(types.DockerLayer)
	}
	nb, _ := json.Marshal(raw)
	d, err := s.PutBytes(ctx, types.DockerManifestSchema2, nb)
	if err != nil {
		t.Fatal(err)
	}
	c, err := snapshot.Convert(ctx, s, d, layer.Zstd, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := manifestOf(t, s, c.Manifest.Digest)
	if c.Manifest.MediaType != types.OCIManifestSchema1 || m.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayerZStd {
		t.Fatalf("converted %+v: %+v", c, m)
	}
	if len(conversions(t, s)) != 0 {
		t.Fatal("a copy of an untagged manifest was recorded")
	}
	back, err := snapshot.Convert(ctx, s, c.Manifest, layer.Gzip, layer.Options{})
	if err != nil || manifestOf(t, s, back.Manifest.Digest).Layers[0].MediaType != types.OCILayer {
		t.Fatalf("back to gzip: %+v, %v", back, err)
	}
}

// Conversions of one snapshot racing in processes of their own (each
// with its own view of the store) all succeed, leave one recorded copy
// and a store that checks clean; the copy survives gc.
func TestConvertRacing(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	r := build(t, s, "race", strings.Repeat("race ", 200000), time.Now().Add(-time.Minute))
	if err := snapshot.Publish(ctx, s, r, -1); err != nil {
		t.Fatal(err)
	}
	const n = 4
	type out struct {
		c   *snapshot.Conversion
		err error
	}
	res := make(chan out, n)
	for range n {
		go func() {
			si, err := oci.Open(root)
			if err != nil {
				res <- out{err: err}
				return
			}
			c, err := snapshot.Convert(ctx, si, r.Manifest, layer.Zstd, layer.Options{})
			res <- out{c, err}
		}()
	}
	var got []*snapshot.Conversion
	for range n {
		o := <-res
		if o.err != nil {
			t.Fatal(o.err)
		}
		got = append(got, o.c)
	}
	recorded := conversions(t, s)
	if len(recorded) != 1 {
		t.Fatalf("%d conversions recorded: %+v", len(recorded), recorded)
	}
	rec := recorded[r.Manifest.Digest.String()]
	for _, c := range got {
		if c.Manifest.Digest != rec.Digest {
			t.Errorf("a racing conversion returned %s, the store recorded %s", c.Manifest.Digest, rec.Digest)
		}
	}
	age(t, s)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, oci.CheckOptions{})
	if err != nil || !rep.OK() {
		t.Fatalf("store check after racing conversions: %+v, %v", rep, err)
	}
}

// A converted copy whose layer blob is damaged in the store (same size,
// other bytes) is only a copy: bb doctor --fix drops it and its blob, and
// the next conversion makes a good one (it was reused as it was, and no
// repair was offered: "import or pull that snapshot again").
func TestDamagedConvertedCopyIsRepaired(t *testing.T) {
	ctx := context.Background()
	s, _ := oci.Open(t.TempDir())
	r := build(t, s, "dmg", strings.Repeat("damaged ", 20000), time.Now().Add(-time.Minute))
	if err := snapshot.Publish(ctx, s, r, -1); err != nil {
		t.Fatal(err)
	}
	c, err := snapshot.Convert(ctx, s, r.Manifest, layer.Zstd, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l := manifestOf(t, s, c.Manifest.Digest).Layers[0]
	p := s.BlobPath(l.Digest)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	_ = os.Chmod(p, 0o600)
	if err := os.WriteFile(p, b, 0o400); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(ctx, oci.CheckOptions{Fix: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Findings {
		if !f.Fixed {
			t.Errorf("doctor --fix left %s %s: %s", f.Kind, f.Ref, f.Problem)
		}
	}
	c2, err := snapshot.Convert(ctx, s, r.Manifest, layer.Zstd, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	l2 := manifestOf(t, s, c2.Manifest.Digest).Layers[0]
	f, err := s.Blob(ctx, l2.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if h, _, _ := v1.SHA256(f); h != l2.Digest {
		t.Errorf("the conversion after doctor --fix gives a damaged layer %s (hashes to %s)", l2.Digest, h)
	}
	if rep, err := s.Check(ctx, oci.CheckOptions{}); err != nil || !rep.OK() {
		t.Errorf("store check: %+v, %v", rep, err)
	}
}
