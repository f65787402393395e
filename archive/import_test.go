package archive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func resumeInto(dir string) bottle.ResumeRequest {
	return bottle.ResumeRequest{Resume: bottle.ResumeOptions{Dir: dir}}
}

// onlyReader hides everything but Read: a pipe, as stdin is.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	a := newEnv(t)
	src := sourceTree(t, 256<<10)
	res := a.commit(t, "demo", src)
	b := a.export(t, "demo")

	h := newEnv(t)
	ir, err := h.m.Import(ctx, onlyReader{bytes.NewReader(b)}, bottle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ir.Images) != 1 || ir.Images[0].Slug != "demo" || ir.Images[0].Digest != res.Digest || !ir.Images[0].Metadata {
		t.Fatalf("import: %+v", ir)
	}
	if ir.Bytes != int64(len(b)) {
		t.Errorf("read %d bytes of %d", ir.Bytes, len(b))
	}
	md, err := h.home.ReadMetadata("demo")
	// No host path travels, and none names the bottle's directory here.
	if err != nil || md == nil || md.Backend != bottle.Dir || md.Identity != "demo" || md.Cwd != "" {
		t.Fatalf("metadata.json after import: %+v %v", md, err)
	}
	if p, err := h.home.DirSource("demo"); p != "" || err != nil {
		t.Fatalf("import recorded a dir source: %q %v", p, err)
	}
	if !h.home.Preserved("demo") {
		t.Error("no preserve marker")
	}
	if raw, err := snapshot.GetMetadata(ctx, h.m.Store, res.Snapshot.Manifest.Digest); err != nil || !bytes.Contains(raw, []byte(`"identity"`)) {
		t.Errorf("metadata artifact in the store: %s %v", raw, err)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	if _, err := h.m.Resume(ctx, "demo", resumeInto(dst)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
	if files := storetest.IngestFiles(t, h.m.Store); len(files) > 0 {
		t.Errorf("temp files left: %v", files)
	}
	checkNoGarbage(t, h)

	// The same archive again changes nothing and adds no blob.
	before := h.state(t)
	ir, err = h.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ir.NewBlobs != 0 {
		t.Errorf("second import added %d blobs", ir.NewBlobs)
	}
	if after := h.state(t); strings.Join(after.blobs, " ") != strings.Join(before.blobs, " ") {
		t.Error("second import changed the blobs")
	}

	// --as imports under another slug, with identity rewritten.
	ir, err = h.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{As: "copy"})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Images[0].Slug != "copy" {
		t.Fatalf("--as: %+v", ir)
	}
	if md, _ := h.home.ReadMetadata("copy"); md == nil || md.Identity != "copy" || md.Backend != bottle.Dir {
		t.Fatalf("metadata of copy: %+v", md)
	}
	dst2 := filepath.Join(t.TempDir(), "rootfs")
	if _, err := h.m.Resume(ctx, "copy", resumeInto(dst2)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst2)
}

// checkNoGarbage fails if the store holds blobs nothing references.
func checkNoGarbage(t *testing.T, e *env) {
	t.Helper()
	before := e.state(t)
	var all []v1.Hash
	for _, b := range before.blobs {
		all = append(all, v1.Hash{Algorithm: "sha256", Hex: b})
	}
	if err := e.m.Store.Discard(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	if after := e.state(t); len(after.blobs) != len(before.blobs) {
		t.Errorf("import left %d unreferenced blobs", len(before.blobs)-len(after.blobs))
	}
}

func TestImportConflicts(t *testing.T) {
	ctx := context.Background()
	a := newEnv(t)
	a.commit(t, "demo", sourceTree(t, 1<<10))
	b := a.export(t, "demo")

	h := newEnv(t)
	h.commit(t, "demo", sourceTree(t, 1<<10)) // another snapshot of demo here
	before := h.state(t)
	_, err := h.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{})
	if err == nil || !strings.Contains(err.Error(), "--as") {
		t.Fatalf("slug taken: %v", err)
	}
	h.unchanged(t, before)
	if _, err := h.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{Force: true}); err != nil {
		t.Fatalf("--force: %v", err)
	}

	// A bottle with state but no snapshot is not taken over either.
	h2 := newEnv(t)
	if err := os.MkdirAll(h2.home.StateDir("demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h2.home.StateDir("demo"), "metadata.json"), []byte(`{"identity":"demo","backend":""}`), 0o644); err != nil {
		t.Fatal(err)
	}
	before = h2.state(t)
	if _, err := h2.m.Import(ctx, bytes.NewReader(b), bottle.ImportOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("existing bottle: %v", err)
	}
	h2.unchanged(t, before)

	// --as with an archive of two images is refused.
	a.commit(t, "other", sourceTree(t, 1<<10))
	two := a.export(t, "demo", "other")
	before = h2.state(t)
	if _, err := h2.m.Import(ctx, bytes.NewReader(two), bottle.ImportOptions{As: "x"}); err == nil || !strings.Contains(err.Error(), "2 images") {
		t.Fatalf("--as with two images: %v", err)
	}
	h2.unchanged(t, before)
	// Both import under their own slugs.
	h3 := newEnv(t)
	ir, err := h3.m.Import(ctx, bytes.NewReader(two), bottle.ImportOptions{})
	if err != nil || len(ir.Images) != 2 || ir.Images[0].Slug != "demo" || ir.Images[1].Slug != "other" {
		t.Fatalf("two images: %+v %v", ir, err)
	}
}

func TestImportGzip(t *testing.T) {
	a := newEnv(t)
	a.commit(t, "demo", sourceTree(t, 1<<10))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(a.export(t, "demo"))
	zw.Close()
	h := newEnv(t)
	if _, err := h.m.Import(context.Background(), &gz, bottle.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestImportSkopeoArchive(t *testing.T) {
	needTool(t, "skopeo")
	ctx := context.Background()
	a := newEnv(t)
	src := sourceTree(t, 64<<10)
	a.commit(t, "demo", src)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.tar"), filepath.Join(dir, "out.tar")
	if err := os.WriteFile(in, a.export(t, "demo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// skopeo writes its own archive: no bb names, no metadata artifact.
	run(t, "skopeo", "copy", "-q", "oci-archive:"+in+":latest", "oci-archive:"+out)
	h := newEnv(t)
	ir, err := h.m.ImportFile(ctx, out, bottle.ImportOptions{As: "copied", Backend: bottle.Dir})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Images[0].Metadata {
		t.Error("skopeo kept the metadata artifact?")
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	if _, err := h.m.Resume(ctx, "copied", resumeInto(dst)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst)
	// skopeo's docker-archive links layer.tar files to other entries
	// (as podman save does): the links resolve to the files they name.
	out2 := filepath.Join(dir, "docker.tar")
	run(t, "skopeo", "copy", "-q", "oci-archive:"+in, "docker-archive:"+out2+":x/y:z")
	if _, err := h.m.ImportFile(ctx, out2, bottle.ImportOptions{As: "fromdocker", Backend: bottle.Dir}); err != nil {
		t.Fatalf("skopeo docker-archive: %v", err)
	}
	dst2 := filepath.Join(t.TempDir(), "rootfs")
	if _, err := h.m.Resume(ctx, "fromdocker", resumeInto(dst2)); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, dst2)
}

func TestImportNeedsSlug(t *testing.T) {
	a := newEnv(t)
	a.commit(t, "demo", sourceTree(t, 1<<10))
	ents := entries(t, a.export(t, "demo"))
	// Drop bb's names: index.json with a plain ref name only.
	for i, x := range ents {
		if x.hdr.Name == "index.json" {
			var idx map[string]any
			json.Unmarshal(x.data, &idx)
			ms := idx["manifests"].([]any)
			m := ms[0].(map[string]any)
			m["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "v1"}
			idx["manifests"] = ms[:1]
			ents[i].data, _ = json.Marshal(idx)
		}
		if x.hdr.Name == "manifest.json" {
			ents[i].data = []byte(strings.ReplaceAll(string(x.data), "bot-bottle-committed-demo", "other"))
		}
	}
	// The manifest itself still names its slug (bb writes it there too):
	// strip that as well by rebuilding is not possible without changing
	// the digest, so check the fallback order instead.
	h := newEnv(t)
	ir, err := h.m.Import(context.Background(), bytes.NewReader(build(t, ents)), bottle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ir.Images[0].Slug != "demo" {
		t.Fatalf("slug from the manifest's annotations: %+v", ir)
	}
}
