package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

func digestOf(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// layerTar is a small valid layer: one file.
func layerTar(t testing.TB, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	return b.Bytes()
}

func gzipped(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func zstded(b []byte) []byte {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// hostile builds an OCI layout archive entry by entry, so tests can lie
// about anything.
type hostile struct {
	ents []tarEntry
	have map[v1.Hash]bool
}

func newHostile() *hostile {
	h := &hostile{have: map[v1.Hash]bool{}}
	h.ents = append(h.ents, reg("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)))
	return h
}

// blob adds b (once) and returns its descriptor.
func (h *hostile) blob(mt types.MediaType, b []byte) v1.Descriptor {
	d := v1.Descriptor{MediaType: mt, Digest: digestOf(b), Size: int64(len(b))}
	if !h.have[d.Digest] {
		h.have[d.Digest] = true
		h.ents = append(h.ents, reg(blobName(d.Digest), b))
	}
	return d
}

// image adds an image whose layers are blobs (of media types mts) and
// whose config claims diffIDs; configLast puts the config after the
// layers in the archive.
func (h *hostile) image(blobs [][]byte, mts []types.MediaType, diffIDs []v1.Hash, configLast bool) v1.Descriptor {
	cfg := marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	var cd v1.Descriptor
	if !configLast {
		cd = h.blob(types.OCIConfigJSON, cfg)
	}
	var layers []v1.Descriptor
	for i, b := range blobs {
		layers = append(layers, h.blob(mts[i], b))
	}
	if configLast {
		cd = h.blob(types.OCIConfigJSON, cfg)
	}
	if layers == nil {
		layers = []v1.Descriptor{}
	}
	return h.blob(types.OCIManifestSchema1, marshal(map[string]any{
		"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "config": cd, "layers": layers,
	}))
}

// index adds a nested index of ds.
func (h *hostile) index(ds ...v1.Descriptor) v1.Descriptor {
	return h.blob(types.OCIImageIndex, marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex, "manifests": ds}))
}

// archive writes index.json (entries ds, each named slug) and the tar.
func (h *hostile) archive(t testing.TB, ds ...v1.Descriptor) []byte {
	t.Helper()
	var named []v1.Descriptor
	for _, d := range ds {
		d.Annotations = map[string]string{oci.SlugAnnotation: "hostile"}
		named = append(named, d)
	}
	ents := append(h.ents, reg("index.json", marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIImageIndex, "manifests": named})))
	return build(t, ents)
}

// refused imports raw into a fresh store holding one snapshot and checks
// that it is refused with an ErrInvalid saying want, and that nothing
// changed. It returns how long the import took.
func refused(t *testing.T, raw []byte, want string) time.Duration {
	t.Helper()
	h := newEnv(t)
	h.commit(t, "mine", sourceTree(t, 1<<10))
	before := h.state(t)
	start := time.Now()
	_, err := h.m.Import(context.Background(), onlyReader{bytes.NewReader(raw)}, bottle.ImportOptions{Backend: "dir"})
	took := time.Since(start)
	if err == nil || !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an ErrInvalid saying %q", err, want)
	}
	t.Log(err)
	h.unchanged(t, before)
	return took
}

// accepted imports raw into a fresh store; it returns the result and
// how long the import took.
func accepted(t *testing.T, raw []byte) (*bottle.ImportResult, time.Duration) {
	t.Helper()
	h := newEnv(t)
	start := time.Now()
	res, err := h.m.Import(context.Background(), onlyReader{bytes.NewReader(raw)}, bottle.ImportOptions{Backend: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	return res, time.Since(start)
}

func TestImportVerifiesDiffIDs(t *testing.T) {
	good := layerTar(t, "the real content\n")
	evil := layerTar(t, "something else\n")
	diff := digestOf(good)
	for _, configLast := range []bool{false, true} {
		t.Run(fmt.Sprintf("configLast=%v", configLast), func(t *testing.T) {
			t.Parallel()
			img := func(blob []byte, mt types.MediaType) []byte {
				h := newHostile()
				return h.archive(t, h.image([][]byte{blob}, []types.MediaType{mt}, []v1.Hash{diff}, configLast))
			}
			accepted(t, img(gzipped(good), types.OCILayer))
			accepted(t, img(zstded(good), types.OCILayerZStd))
			accepted(t, img(good, types.OCIUncompressedLayer))
			accepted(t, img(gzipped(good), types.DockerLayer))
			refused(t, img(gzipped(evil), types.OCILayer), "diff_id")
			refused(t, img(zstded(evil), types.OCILayerZStd), "diff_id")
			refused(t, img(evil, types.OCIUncompressedLayer), "diff_id")
			refused(t, img(zstded(good), types.OCILayer), "says gzip compression, its bytes are zstd")
			refused(t, img(gzipped(good), types.OCIUncompressedLayer), "says none compression, its bytes are gzip")
			refused(t, img(good, types.OCILayerZStd), "says zstd compression, its bytes are none")
			damaged := gzipped(good)
			damaged = damaged[:len(damaged)-6]
			refused(t, img(damaged, types.OCILayer), "decompressing gzip")
		})
	}
}

// TestImportDockerArchiveDiffIDs: a docker archive (manifest.json only)
// whose gzip layer does not match its config is refused.
func TestImportDockerArchiveDiffIDs(t *testing.T) {
	good := layerTar(t, "docker layer\n")
	mk := func(layer []byte) []byte {
		cfg := marshal(map[string]any{"architecture": runtime.GOARCH, "os": "linux",
			"rootfs": map[string]any{"type": "layers", "diff_ids": []v1.Hash{digestOf(good)}}})
		return build(t, []tarEntry{
			reg("abc/layer.tar", layer),
			reg("cfg.json", cfg),
			reg("manifest.json", marshal([]map[string]any{{"Config": "cfg.json", "RepoTags": []string{"bot-bottle-committed-d:latest"}, "Layers": []string{"abc/layer.tar"}}})),
		})
	}
	accepted(t, mk(gzipped(good)))
	refused(t, mk(gzipped(layerTar(t, "docker layer, altered\n"))), "diff_id")
}

// TestImportRepeatedManifests: an index.json naming one manifest many
// times costs one parse, and more entries than MaxIndexEntries are
// refused at once.
func TestImportRepeatedManifests(t *testing.T) {
	good := layerTar(t, "x")
	h := newHostile()
	img := h.image([][]byte{gzipped(good)}, []types.MediaType{types.OCILayer}, []v1.Hash{digestOf(good)}, false)
	many := func(n int) []v1.Descriptor {
		ds := make([]v1.Descriptor, n)
		for i := range ds {
			ds[i] = img
		}
		return ds
	}
	res, d := accepted(t, h.archive(t, many(archive.MaxIndexEntries)...))
	if len(res.Images) != 1 {
		t.Fatalf("%d images, want 1", len(res.Images))
	}
	t.Logf("%d copies of one manifest: %s", archive.MaxIndexEntries, d)
	d = refused(t, h.archive(t, many(15000)...), "MaxIndexEntries") // ~3.5 MiB of index.json
	t.Logf("refusing 15000 entries: %s", d)

	// A nested index of many copies, itself named many times.
	h = newHostile()
	img = h.image([][]byte{gzipped(good)}, []types.MediaType{types.OCILayer}, []v1.Hash{digestOf(good)}, false)
	sub := h.index(many(archive.MaxIndexEntries)...)
	subs := make([]v1.Descriptor, archive.MaxIndexEntries)
	for i := range subs {
		subs[i] = sub
	}
	_, d = accepted(t, h.archive(t, subs...))
	t.Logf("%d copies of an index of %d copies: %s", archive.MaxIndexEntries, archive.MaxIndexEntries, d)
	// Not a timing test: parsed once per entry, these 1M entries would
	// take about an hour; parsed once per digest, well under a second.
	if d > 2*time.Minute {
		t.Errorf("%d copies of an index of %d copies took %s", archive.MaxIndexEntries, archive.MaxIndexEntries, d)
	}
}

func TestImportBoundsNesting(t *testing.T) {
	good := layerTar(t, "x")
	chain := func(depth int) []byte {
		h := newHostile()
		d := h.image([][]byte{gzipped(good)}, []types.MediaType{types.OCILayer}, []v1.Hash{digestOf(good)}, false)
		for range depth {
			d = h.index(d)
		}
		return h.archive(t, d)
	}
	accepted(t, chain(archive.MaxIndexDepth))
	refused(t, chain(archive.MaxIndexDepth+1), "MaxIndexDepth")

	// Too many layers.
	h := newHostile()
	n := archive.MaxLayers + 1
	blobs, mts, diffs := make([][]byte, n), make([]types.MediaType, n), make([]v1.Hash, n)
	for i := range n {
		blobs[i], mts[i], diffs[i] = good, types.OCIUncompressedLayer, digestOf(good)
	}
	refused(t, h.archive(t, h.image(blobs, mts, diffs, false)), "MaxLayers")
}

// TestImportGzipBomb imports a layer that expands 1000-fold: its diffID
// is checked while it streams, without holding the expansion.
func TestImportGzipBomb(t *testing.T) {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	zw.Write(zero)
	zw.Close()
	var bomb bytes.Buffer
	exp := sha256.New()
	for range 64 {
		bomb.Write(member.Bytes())
		exp.Write(zero)
	}
	diff := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(exp.Sum(nil))}
	mk := func(d v1.Hash) []byte {
		h := newHostile()
		return h.archive(t, h.image([][]byte{bomb.Bytes()}, []types.MediaType{types.OCILayer}, []v1.Hash{d}, false))
	}
	wrong := mk(digestOf([]byte("not it")))
	right := mk(diff)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	refused(t, wrong, "diff_id")
	accepted(t, right)
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 48<<20 {
		t.Errorf("heap in use grew by %d MiB", grew>>20)
	}
}
