package archive_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fixture is a valid archive and what it holds.
type fixture struct {
	raw      []byte
	manifest v1.Hash
	config   v1.Hash
	layer    v1.Hash
}

func newFixture(t testing.TB) fixture {
	t.Helper()
	a := newEnv(t)
	res := a.commit(t, "demo", sourceTree(t, 32<<10))
	return fixture{raw: a.export(t, "demo"), manifest: res.Snapshot.Manifest.Digest, config: res.Snapshot.Config.Digest, layer: res.Layer.Digest}
}

func blobName(h v1.Hash) string { return archive.BlobsDir + h.Hex }

func find(ents []tarEntry, name string) int {
	return slices.IndexFunc(ents, func(e tarEntry) bool { return e.hdr.Name == name })
}

func without(ents []tarEntry, name string) []tarEntry {
	return slices.DeleteFunc(slices.Clone(ents), func(e tarEntry) bool { return e.hdr.Name == name })
}

func reg(name string, data []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}

// editJSON rewrites the JSON of entry name.
func editJSON(t testing.TB, ents []tarEntry, name string, fn func(v any) any) []tarEntry {
	t.Helper()
	ents = slices.Clone(ents)
	i := find(ents, name)
	var v any
	if err := json.Unmarshal(ents[i].data, &v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(fn(v))
	if err != nil {
		t.Fatal(err)
	}
	ents[i].data = b
	return ents
}

// editManifest rewrites the image manifest (so its digest changes),
// renames its blob and points index.json's image entry at it; the
// metadata entry, whose subject no longer exists, is dropped.
func editManifest(t testing.TB, f fixture, ents []tarEntry, fn func(m map[string]any) []byte) []tarEntry {
	t.Helper()
	ents = slices.Clone(ents)
	i := find(ents, blobName(f.manifest))
	var m map[string]any
	if err := json.Unmarshal(ents[i].data, &m); err != nil {
		t.Fatal(err)
	}
	b := fn(m)
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	ents[i] = reg(blobName(h), b)
	return editJSON(t, ents, "index.json", func(v any) any {
		idx := v.(map[string]any)
		img := idx["manifests"].([]any)[0].(map[string]any)
		img["digest"], img["size"] = h.String(), len(b)
		img["mediaType"] = string(types.OCIManifestSchema1) // not the image index that paired it with its metadata
		idx["manifests"] = []any{img}
		return idx
	})
}

func marshal(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func TestImportRefusesBadInput(t *testing.T) {
	f := newFixture(t)
	ents := entries(t, f.raw)
	layerPath := blobName(f.layer)
	layerIdx := find(ents, layerPath)

	flipped := slices.Clone(ents)
	flipped[layerIdx].data = slices.Clone(flipped[layerIdx].data)
	flipped[layerIdx].data[100] ^= 0xff

	// A header that declares far more than the archive holds.
	var huge bytes.Buffer
	huge.Write(f.raw[:len(f.raw)-1024])
	tw := tar.NewWriter(&huge)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "blobs/sha256/" + strings.Repeat("a", 64), Size: 1 << 40, Mode: 0o644})
	tw.Write(make([]byte, 4096))
	tw.Flush()

	var badGzip bytes.Buffer
	zw := gzip.NewWriter(&badGzip)
	zw.Write(f.raw)
	zw.Close()
	gz := slices.Clone(badGzip.Bytes())
	gz[len(gz)/2] ^= 0xff

	cases := []struct {
		name string
		raw  []byte
		want string
	}{
		{"blob digest mismatch", build(t, flipped), "does not match its name"},
		{"descriptor size mismatch", build(t, editJSON(t, ents, "index.json", func(v any) any {
			m := v.(map[string]any)["manifests"].([]any)[0].(map[string]any)
			m["size"] = m["size"].(float64) + 1
			return v
		})), "declares"},
		{"layer size far beyond the file", build(t, editManifest(t, f, ents, func(m map[string]any) []byte {
			m["layers"].([]any)[0].(map[string]any)["size"] = 1 << 40
			return marshal(m)
		})), "declares 1099511627776 bytes"},
		{"path with ..", build(t, append(slices.Clone(ents), reg("../evil", []byte("x")))), "escapes"},
		{"nested ..", build(t, append(slices.Clone(ents), reg("blobs/../../evil", []byte("x")))), "escapes"},
		{"absolute path", build(t, append(slices.Clone(ents), reg("/etc/evil", []byte("x")))), "absolute"},
		{"symlink", build(t, append([]tarEntry{{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs", Linkname: "/tmp"}}}, ents...)), "symbolic link"},
		{"path through a symlink", build(t, append(slices.Clone(ents),
			tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "up", Linkname: "/"}},
			reg("up/etc/evil", []byte("x")))), "symbolic link"},
		{"hard link", build(t, append(slices.Clone(ents), tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "again.json", Linkname: "index.json"}})), "hard link"},
		{"device", build(t, append(slices.Clone(ents), tarEntry{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "null", Devmajor: 1, Devminor: 3}})), "character device"},
		{"fifo", build(t, append(slices.Clone(ents), tarEntry{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "pipe"}})), "FIFO"},
		{"truncated in a blob", f.raw[:len(f.raw)-2048], "truncated"},
		{"truncated in a header", f.raw[:1024+100], "truncated"},
		{"truncated between entries", f.raw[:len(f.raw)-1024], "end-of-archive marker"},
		{"one zero block", f.raw[:len(f.raw)-512], "end-of-archive marker"},
		{"empty input", nil, "end-of-archive marker"},
		{"trailing data", append(slices.Clone(f.raw), append(make([]byte, 1000), "more"...)...), "follows the end of the archive"},
		{"duplicate blob", build(t, append(slices.Clone(ents), ents[layerIdx])), "two entries"},
		{"duplicate index.json", build(t, append(slices.Clone(ents), ents[find(ents, "index.json")])), "two entries"},
		{"file and directory of one name", build(t, append(slices.Clone(ents), tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "index.json/"}})), "two entries"},
		{"missing layer", build(t, without(ents, layerPath)), "does not contain"},
		{"missing config", build(t, without(ents, blobName(f.config))), "does not contain"},
		{"missing manifest", build(t, without(ents, blobName(f.manifest))), "does not contain"},
		{"header size beyond the file", huge.Bytes(), "bytes of the archive are left"},
		{"oversized index.json", build(t, append(without(ents, "index.json"), reg("index.json", append(ents[find(ents, "index.json")].data, bytes.Repeat([]byte(" "), archive.MaxIndexSize)...)))), "bb reads at most"},
		{"oversized manifest.json", build(t, append(without(ents, "manifest.json"), reg("manifest.json", append(ents[find(ents, "manifest.json")].data, bytes.Repeat([]byte(" "), archive.MaxManifestSize)...)))), "bb reads at most"},
		{"oversized manifest blob", build(t, editManifest(t, f, ents, func(m map[string]any) []byte {
			return append(marshal(m), bytes.Repeat([]byte(" "), oci.MaxManifestSize)...)
		})), "bb reads at most"},
		{"not a tar", bytes.Repeat([]byte("not a tar archive\n"), 100), "not a tar archive"},
		{"no index.json or manifest.json", build(t, without(without(ents, "index.json"), "manifest.json")), "neither index.json nor manifest.json"},
		{"index.json without oci-layout", build(t, without(ents, "oci-layout")), "no oci-layout"},
		{"layer media type", build(t, editManifest(t, f, ents, func(m map[string]any) []byte {
			m["layers"].([]any)[0].(map[string]any)["mediaType"] = "application/octet-stream"
			return marshal(m)
		})), "not a layer"},
		{"config media type", build(t, editManifest(t, f, ents, func(m map[string]any) []byte {
			m["config"].(map[string]any)["mediaType"] = string(types.OCILayer)
			return marshal(m)
		})), "not an image config"},
		{"index entry media type", build(t, editJSON(t, ents, "index.json", func(v any) any {
			v.(map[string]any)["manifests"].([]any)[0].(map[string]any)["mediaType"] = "application/json"
			return v
		})), "not an image manifest or index"},
		{"manifest.json path escapes", build(t, editJSON(t, ents, "manifest.json", func(v any) any {
			v.([]any)[0].(map[string]any)["Layers"] = []string{"../../etc/passwd"}
			return v
		})), "escapes the archive"},
		{"manifest.json disagrees with index.json", build(t, editJSON(t, ents, "manifest.json", func(v any) any {
			v.([]any)[0].(map[string]any)["Layers"] = []string{blobName(f.config)}
			return v
		})), "disagree"},
		{"blob of another algorithm", build(t, append(slices.Clone(ents), reg("blobs/sha512/"+strings.Repeat("a", 128), []byte("x")))), "not a blob"},
		{"blob name not a digest", build(t, append(slices.Clone(ents), reg("blobs/sha256/XYZ", []byte("x")))), "not named by a sha256 digest"},
		{"damaged gzip", gz, "invalid archive"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, fromFile := range []bool{false, true} {
				h := newEnv(t)
				h.commit(t, "mine", sourceTree(t, 1<<10)) // shares the empty-config blob with the archive
				before := h.state(t)
				var err error
				if fromFile {
					p := filepath.Join(t.TempDir(), "in.tar")
					if err := os.WriteFile(p, tc.raw, 0o644); err != nil {
						t.Fatal(err)
					}
					_, err = h.m.ImportFile(context.Background(), p, bottle.ImportOptions{})
				} else {
					_, err = h.m.Import(context.Background(), onlyReader{bytes.NewReader(tc.raw)}, bottle.ImportOptions{})
				}
				want := tc.want
				if tc.name == "header size beyond the file" && !fromFile {
					want = "truncated" // a stream's length is not known up front
				}
				if err == nil || !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), want) {
					t.Fatalf("fromFile=%v: got %v, want an ErrInvalid saying %q", fromFile, err, want)
				}
				t.Logf("fromFile=%v: %v", fromFile, err)
				h.unchanged(t, before)
			}
		})
	}
}

// TestImportRefusalKeepsExistingBlobs imports a damaged archive into a
// store that already holds most of its blobs: they must stay.
func TestImportRefusalKeepsExistingBlobs(t *testing.T) {
	f := newFixture(t)
	h := newEnv(t)
	if _, err := h.m.Import(context.Background(), bytes.NewReader(f.raw), bottle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	ents := entries(t, f.raw)
	// Another image's config and manifest would be new; its layer
	// arrives damaged after them.
	bad := editManifest(t, f, ents, func(m map[string]any) []byte {
		m["annotations"] = map[string]string{"x": "y"}
		return marshal(m)
	})
	i := find(bad, blobName(f.layer))
	bad[i].data = slices.Clone(bad[i].data)
	bad[i].data[10] ^= 1
	before := h.state(t)
	if _, err := h.m.Import(context.Background(), bytes.NewReader(build(t, bad)), bottle.ImportOptions{Force: true}); !errors.Is(err, archive.ErrInvalid) {
		t.Fatalf("damaged layer: %v", err)
	}
	h.unchanged(t, before)
}

func TestImportAcceptsPaddingAndDockerArchives(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// tar pads archives to its record size with zeros.
	h := newEnv(t)
	if _, err := h.m.Import(ctx, bytes.NewReader(append(slices.Clone(f.raw), make([]byte, 9216)...)), bottle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}

	// GNU tar of a layout directory names entries ./x.
	dotted := []tarEntry{{hdr: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}}}
	for _, x := range entries(t, f.raw) {
		x.hdr.Name = "./" + x.hdr.Name
		dotted = append(dotted, x)
	}
	h = newEnv(t)
	if _, err := h.m.Import(ctx, bytes.NewReader(build(t, dotted)), bottle.ImportOptions{}); err != nil {
		t.Fatalf("entries named ./x: %v", err)
	}

	// A docker archive: manifest.json only, gzip layers.
	ents := without(without(without(entries(t, f.raw), "index.json"), "oci-layout"), blobName(f.manifest))
	h = newEnv(t)
	ir, err := h.m.Import(ctx, bytes.NewReader(build(t, ents)), bottle.ImportOptions{Backend: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Format != "docker" || ir.Images[0].Slug != "demo" {
		t.Fatalf("docker archive: %+v", ir)
	}
	if _, err := h.m.Resume(ctx, "demo", resumeInto(filepath.Join(t.TempDir(), "r"))); err != nil {
		t.Fatal(err)
	}

	// An uncompressed layer must hash to its diff_id.
	zr, err := gzip.NewReader(bytes.NewReader(ents[find(ents, blobName(f.layer))].data))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	plainEnts := append(without(ents, blobName(f.layer)), reg("abc/layer.tar", plain.Bytes()))
	plainEnts = editJSON(t, plainEnts, "manifest.json", func(v any) any {
		v.([]any)[0].(map[string]any)["Layers"] = []string{"abc/layer.tar"}
		return v
	})
	h = newEnv(t)
	if _, err := h.m.Import(ctx, bytes.NewReader(build(t, plainEnts)), bottle.ImportOptions{As: "plain", Backend: "dir"}); err != nil {
		t.Fatal(err)
	}
	d := plain.Bytes()
	d[len(d)-2000] ^= 1 // inside the tar's trailing zeros: still a valid tar
	i := find(plainEnts, "abc/layer.tar")
	plainEnts[i] = reg("abc/layer.tar", d)
	h = newEnv(t)
	before := h.state(t)
	if _, err := h.m.Import(ctx, bytes.NewReader(build(t, plainEnts)), bottle.ImportOptions{As: "plain"}); err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("uncompressed layer with a wrong diff_id: %v", err)
	}
	h.unchanged(t, before)
}
