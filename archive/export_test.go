package archive_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestExportLayout(t *testing.T) {
	e := newEnv(t)
	res := e.commit(t, "demo", sourceTree(t, 64<<10))
	b := e.export(t, "demo")
	if again := e.export(t, "demo"); !bytes.Equal(b, again) {
		t.Fatal("two exports of the same snapshot differ")
	}
	ents := entries(t, b)
	var names []string
	files := map[string][]byte{}
	for _, x := range ents {
		names = append(names, x.hdr.Name)
		files[x.hdr.Name] = x.data
		if !x.hdr.ModTime.Equal(time.Unix(0, 0)) || x.hdr.Uid != 0 || x.hdr.Gid != 0 {
			t.Errorf("%s: mtime %v owner %d:%d, want fixed", x.hdr.Name, x.hdr.ModTime, x.hdr.Uid, x.hdr.Gid)
		}
		if rest, ok := strings.CutPrefix(x.hdr.Name, archive.BlobsDir); ok && rest != "" {
			h, _, _ := v1.SHA256(bytes.NewReader(x.data))
			if h.Hex != rest {
				t.Errorf("blob %s holds %s", rest, h)
			}
		}
	}
	if strings.Join(names[:5], " ") != "oci-layout index.json manifest.json blobs/ blobs/sha256/" {
		t.Errorf("entries start %v", names[:5])
	}

	var idx v1.IndexManifest
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("index.json has %+v, want one image index (the image and its metadata)", idx.Manifests)
	}
	top := idx.Manifests[0]
	var pair v1.IndexManifest
	if err := json.Unmarshal(files[archive.BlobsDir+top.Digest.Hex], &pair); err != nil {
		t.Fatal(err)
	}
	if len(pair.Manifests) != 2 {
		t.Fatalf("the image index has %d entries, want the image and its metadata", len(pair.Manifests))
	}
	img := pair.Manifests[0]
	if img.Digest != res.Snapshot.Manifest.Digest {
		t.Errorf("image entry %s, want %s", img.Digest, res.Snapshot.Manifest.Digest)
	}
	want := map[string]string{
		oci.ContainerdNameAnnotation: "docker.io/library/bot-bottle-committed-demo:latest",
		oci.AppleNameAnnotation:      "docker.io/library/bot-bottle-committed-demo:latest",
		oci.RefNameAnnotation:        "latest",
		oci.SlugAnnotation:           "demo",
		oci.BackendAnnotation:        "dir",
	}
	for k, v := range want {
		if top.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, top.Annotations[k], v)
		}
	}
	if img.Platform == nil || img.Platform.OS != "linux" {
		t.Errorf("platform %+v", img.Platform)
	}
	md := pair.Manifests[1]
	if md.ArtifactType != snapshot.MetadataArtifactType || md.Platform == nil || md.Platform.OS != "unknown" {
		t.Errorf("metadata entry %+v", md)
	}
	var art struct {
		Subject v1.Descriptor   `json:"subject"`
		Layers  []v1.Descriptor `json:"layers"`
	}
	if err := json.Unmarshal(files[archive.BlobsDir+md.Digest.Hex], &art); err != nil {
		t.Fatal(err)
	}
	if art.Subject.Digest != img.Digest {
		t.Errorf("metadata subject %s, want %s", art.Subject.Digest, img.Digest)
	}
	raw := files[archive.BlobsDir+art.Layers[0].Digest.Hex]
	var mdj map[string]any
	if err := json.Unmarshal(raw, &mdj); err != nil || mdj["backend"] != "dir" || mdj["identity"] != "demo" {
		t.Errorf("metadata.json in the archive: %s", raw)
	}

	var legacy []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &legacy); err != nil {
		t.Fatal(err)
	}
	if len(legacy) != 1 || legacy[0].RepoTags[0] != "bot-bottle-committed-demo:latest" ||
		legacy[0].Config != archive.BlobsDir+res.Snapshot.Config.Digest.Hex ||
		len(legacy[0].Layers) != 1 || legacy[0].Layers[0] != archive.BlobsDir+res.Layer.Digest.Hex {
		t.Errorf("manifest.json %+v", legacy)
	}
	if _, ok := files[legacy[0].Layers[0]]; !ok {
		t.Error("manifest.json layer path is not in the archive")
	}
}

func TestExportErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res := e.commit(t, "demo", sourceTree(t, 1<<10))
	var buf bytes.Buffer
	if _, err := archive.Export(ctx, e.m.Store, &buf, []string{"nosuch"}, archive.ExportOptions{}); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("unknown slug: %v", err)
	}
	// Two snapshots of one slug would carry the same name.
	e.commit(t, "demo", sourceTree(t, 1<<10))
	_, err := archive.Export(ctx, e.m.Store, &buf, []string{"demo", res.Snapshot.Manifest.Digest.String()}, archive.ExportOptions{})
	if err == nil || !strings.Contains(err.Error(), "separate archives") {
		t.Errorf("two snapshots of one slug: %v", err)
	}
	if buf.Len() != 0 {
		t.Error("a refused export wrote bytes")
	}
}

func TestExportFileIsAtomic(t *testing.T) {
	e := newEnv(t)
	e.commit(t, "demo", sourceTree(t, 4<<20))
	dir := t.TempDir()
	out := filepath.Join(dir, "demo.tar")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := archive.ExportFile(ctx, e.m.Store, out, []string{"demo"}, archive.ExportOptions{
		Progress: func(n int64) {
			if n > 1<<20 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled export: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a failed export left %v", ents)
	}
	if _, err := archive.ExportFile(context.Background(), e.m.Store, out, []string{"demo"}, archive.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("export left %v", ents)
	}
	// A non-regular target is written in place.
	if _, err := archive.ExportFile(context.Background(), e.m.Store, os.DevNull, []string{"demo"}, archive.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(os.DevNull); err != nil || fi.Mode().IsRegular() {
		t.Fatalf("%s: %v %v", os.DevNull, fi, err)
	}
}

func TestExportReadBySkopeo(t *testing.T) {
	needTool(t, "skopeo")
	e := newEnv(t)
	res := e.commit(t, "demo", sourceTree(t, 64<<10))
	file := filepath.Join(t.TempDir(), "demo.tar")
	if err := os.WriteFile(file, e.export(t, "demo"), 0o644); err != nil {
		t.Fatal(err)
	}
	var ins struct {
		Digest string
		Layers []string
		Env    []string
	}
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "oci-archive:"+file)), &ins); err != nil {
		t.Fatal(err)
	}
	// Without a name: index.json names one entry (the index pairing the
	// image with its metadata); skopeo picks the image for this platform.
	if len(ins.Layers) != 1 || ins.Layers[0] != res.Layer.Digest.String() {
		t.Errorf("skopeo inspect oci-archive: %+v", ins)
	}
	if err := json.Unmarshal([]byte(run(t, "skopeo", "inspect", "docker-archive:"+file)), &ins); err != nil {
		t.Fatal(err)
	}
	if len(ins.Layers) != 1 || len(ins.Env) == 0 {
		t.Errorf("skopeo inspect docker-archive: %+v", ins)
	}
	dst := t.TempDir()
	run(t, "skopeo", "copy", "-q", "oci-archive:"+file, "oci:"+dst+":a")
	run(t, "skopeo", "copy", "-q", "docker-archive:"+file, "oci:"+dst+":b")
	// skopeo keeps the manifest as it is: same digest, same blobs.
	var idx v1.IndexManifest
	b, err := os.ReadFile(filepath.Join(dst, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil || idx.Manifests[0].Digest.String() != res.Digest {
		t.Errorf("skopeo copy oci-archive: index %s (%v)", b, err)
	}
}

// umoci 0.4.7 takes every manifest under a name as a candidate, so an
// image exported with its metadata artifact is "ambiguous" to it: it
// reads an export without metadata.
func TestExportUnpackedByUmoci(t *testing.T) {
	needTool(t, "umoci")
	e := newEnv(t)
	src := sourceTree(t, 64<<10)
	e.commit(t, "demo", src)
	layout := t.TempDir()
	var buf bytes.Buffer
	if _, err := archive.Export(context.Background(), e.m.Store, &buf, []string{"demo"}, archive.ExportOptions{NoMetadata: true}); err != nil {
		t.Fatal(err)
	}
	if err := untar(t, buf.Bytes(), layout); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack", "--image", layout + ":latest", bundle}
	if os.Geteuid() != 0 {
		args = append([]string{"unpack", "--rootless"}, args[1:]...)
	}
	run(t, "umoci", args...)
	if os.Geteuid() == 0 {
		sameTree(t, src, filepath.Join(bundle, "rootfs"))
	} else if _, err := os.Stat(filepath.Join(bundle, "rootfs/home/node/work/notes.md")); err != nil {
		t.Fatal(err)
	}
}

func untar(t testing.TB, b []byte, dir string) error {
	for _, x := range entries(t, b) {
		p := filepath.Join(dir, filepath.FromSlash(x.hdr.Name))
		if x.hdr.Typeflag == '5' {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, x.data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// needDocker skips the test when no dockerd answers (fails it when env
// CI is set).
func needDocker(t testing.TB) {
	t.Helper()
	needTool(t, "docker")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker is needed (CI is set): %v %s", err, out)
		}
		t.Skipf("docker unreachable: %v %s", err, out)
	}
}

func TestExportLoadedByDocker(t *testing.T) {
	needDocker(t)
	e := newEnv(t)
	slug := "archive-test-" + strings.ToLower(filepath.Base(t.TempDir()))
	res := e.commit(t, slug, sourceTree(t, 64<<10))
	ref := "bot-bottle-committed-" + slug + ":latest"
	t.Cleanup(func() { _ = exec.Command("docker", "image", "rm", "-f", ref).Run() })
	file := filepath.Join(t.TempDir(), "demo.tar")
	if err := os.WriteFile(file, e.export(t, slug), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := run(t, "docker", "load", "-i", file); !strings.Contains(out, "Loaded image: "+ref) {
		t.Errorf("docker load said %q", out)
	}
	var ins []struct {
		ID     string `json:"Id"`
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(run(t, "docker", "image", "inspect", ref)), &ins); err != nil || len(ins) != 1 {
		t.Fatalf("docker image inspect: %v %+v", err, ins)
	}
	if ins[0].ID != res.Snapshot.Config.Digest.String() {
		t.Errorf("docker image ID %s, want the config digest %s", ins[0].ID, res.Snapshot.Config.Digest)
	}
	if len(ins[0].RootFS.Layers) != 1 || ins[0].RootFS.Layers[0] != res.Layer.DiffID.String() {
		t.Errorf("docker layers %v, want diffID %s", ins[0].RootFS.Layers, res.Layer.DiffID)
	}

	// docker save of the loaded image imports back: a docker archive
	// without index.json or bb annotations (the slug comes from its name).
	saved := filepath.Join(t.TempDir(), "saved.tar")
	run(t, "docker", "save", "-o", saved, ref)
	e2 := newEnv(t)
	ir, err := e2.m.ImportFile(context.Background(), saved, bottle.ImportOptions{Backend: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ir.Images) != 1 || ir.Images[0].Slug != slug {
		t.Fatalf("import of docker save: %+v", ir)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	if _, err := e2.m.Resume(context.Background(), slug, resumeInto(dst)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "home/node/work/data.bin")); err != nil {
		t.Fatal(err)
	}
	if files := storetest.IngestFiles(t, e2.m.Store); len(files) > 0 {
		t.Errorf("temp files left: %v", files)
	}
}

// TestExportOutputsAgree writes one export through a buffer, a file
// (copy_file_range) and a pipe (sendfile): the bytes are the same.
func TestExportOutputsAgree(t *testing.T) {
	e := newEnv(t)
	e.commit(t, "demo", sourceTree(t, 3<<20))
	want := e.export(t, "demo")
	file := filepath.Join(t.TempDir(), "demo.tar")
	if _, err := archive.ExportFile(context.Background(), e.m.Store, file, []string{"demo"}, archive.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(file); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file export differs from buffer export (%d vs %d bytes, %v)", len(got), len(want), err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := archive.Export(context.Background(), e.m.Store, pw, []string{"demo"}, archive.ExportOptions{})
		pw.Close()
		errc <- err
	}()
	got, rerr := io.ReadAll(pr)
	if err := <-errc; err != nil || rerr != nil {
		t.Fatal(err, rerr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("pipe export differs from buffer export (%d vs %d bytes)", len(got), len(want))
	}
}

// Several snapshots in one archive get distinct ref names (without ':'
// or '/', which oras, regctl and umoci read as separators), by which
// skopeo picks each.
func TestExportSeveralRefNames(t *testing.T) {
	e := newEnv(t)
	a := e.commit(t, "alpha", sourceTree(t, 1<<10))
	b := e.commit(t, "beta", sourceTree(t, 2<<10))
	raw := e.export(t, "alpha", "beta")
	var idx v1.IndexManifest
	for _, x := range entries(t, raw) {
		if x.hdr.Name == archive.IndexFile {
			if err := json.Unmarshal(x.data, &idx); err != nil {
				t.Fatal(err)
			}
		}
	}
	var names []string
	for _, m := range idx.Manifests {
		names = append(names, m.Annotations[oci.RefNameAnnotation])
	}
	if strings.Join(names, " ") != "bot-bottle-committed-alpha bot-bottle-committed-beta" {
		t.Fatalf("ref names %q", names)
	}
	needTool(t, "skopeo")
	file := filepath.Join(t.TempDir(), "two.tar")
	if err := os.WriteFile(file, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"bot-bottle-committed-alpha": a.Digest, "bot-bottle-committed-beta": b.Digest} {
		dst := t.TempDir()
		run(t, "skopeo", "copy", "-q", "oci-archive:"+file+":"+name, "oci:"+dst+":x")
		got, err := os.ReadFile(filepath.Join(dst, "index.json"))
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("skopeo copy of %s: %s (%v), want %s", name, got, err, want)
		}
	}
}

// LayoutReferrers names each image manifest itself (with its platform
// and names) and, next to it, the referrers tag schema's index
// (sha256-<image hex>) listing its metadata artifact; import restores
// image and metadata from it.
func TestExportLayoutReferrers(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	a := e.commit(t, "alpha", sourceTree(t, 1<<10))
	b := e.commit(t, "beta", sourceTree(t, 2<<10))
	var buf bytes.Buffer
	res, err := archive.Export(ctx, e.m.Store, &buf, []string{"alpha", "beta"}, archive.ExportOptions{Layout: archive.LayoutReferrers})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, x := range entries(t, buf.Bytes()) {
		files[x.hdr.Name] = x.data
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(files[archive.IndexFile], &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 4 {
		t.Fatalf("index.json has %d entries, want image and referrers for each of 2 snapshots", len(idx.Manifests))
	}
	for i, want := range []*bottle.CommitResult{a, b} {
		img, refs := idx.Manifests[2*i], idx.Manifests[2*i+1]
		slug := []string{"alpha", "beta"}[i]
		if img.Digest.String() != want.Digest || img.MediaType != types.OCIManifestSchema1 || img.Platform == nil || img.Platform.OS != "linux" {
			t.Errorf("entry %d %+v, want the image %s with its platform", 2*i, img, want.Digest)
		}
		if got := img.Annotations[oci.RefNameAnnotation]; got != "bot-bottle-committed-"+slug {
			t.Errorf("image ref name %q", got)
		}
		if got := img.Annotations[oci.ContainerdNameAnnotation]; got != state.FullCommittedRef(slug) {
			t.Errorf("image containerd name %q", got)
		}
		tag := "sha256-" + img.Digest.Hex
		if refs.MediaType != types.OCIImageIndex || refs.Annotations[oci.RefNameAnnotation] != tag || len(refs.Annotations) != 1 {
			t.Errorf("entry %d %+v, want the referrers index named %s and nothing else", 2*i+1, refs, tag)
		}
		if res.Images[i].ReferrersTag != tag || res.Images[i].Referrers != refs.Digest.String() || res.Images[i].Index != "" || !res.Images[i].Metadata {
			t.Errorf("result %+v", res.Images[i])
		}
		var ri v1.IndexManifest
		if err := json.Unmarshal(files[archive.BlobsDir+refs.Digest.Hex], &ri); err != nil {
			t.Fatal(err)
		}
		if len(ri.Manifests) != 1 || ri.Manifests[0].ArtifactType != snapshot.MetadataArtifactType {
			t.Fatalf("referrers index %+v", ri)
		}
		var art struct {
			Subject v1.Descriptor `json:"subject"`
		}
		if err := json.Unmarshal(files[archive.BlobsDir+ri.Manifests[0].Digest.Hex], &art); err != nil || art.Subject.Digest != img.Digest {
			t.Errorf("metadata subject %s (%v), want %s", art.Subject.Digest, err, img.Digest)
		}
	}
	var legacy []struct{ RepoTags []string }
	if err := json.Unmarshal(files[archive.ManifestFile], &legacy); err != nil || len(legacy) != 2 || legacy[0].RepoTags[0] != state.FullCommittedRef("alpha") {
		t.Errorf("manifest.json %+v %v, want full names (podman load reads it)", legacy, err)
	}

	h := newEnv(t)
	ir, err := h.m.Import(ctx, bytes.NewReader(buf.Bytes()), bottle.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ir.Images) != 2 || !ir.Images[0].Metadata || !ir.Images[1].Metadata {
		t.Fatalf("import: %+v", ir)
	}
	for _, slug := range []string{"alpha", "beta"} {
		if md, err := h.home.ReadMetadata(slug); err != nil || md == nil || md.Identity != slug {
			t.Errorf("metadata of %s after import: %+v %v", slug, md, err)
		}
	}

	if _, err := archive.Export(ctx, e.m.Store, io.Discard, []string{"alpha"}, archive.ExportOptions{Layout: "flat"}); err == nil || !strings.Contains(err.Error(), "referrers") {
		t.Errorf("unknown layout: %v", err)
	}
}

// A FIFO or a symlink another user planted at the export path (in a
// shared directory such as /tmp) does not receive the snapshots.
func TestExportFileRefusesTargetsOfOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to make files of another user")
		}
		t.Skip("needs root to make files of another user")
	}
	e := newEnv(t)
	e.commit(t, "demo", sourceTree(t, 1<<10))
	dir := t.TempDir()
	const nobody = 65534
	fifo := filepath.Join(dir, "fifo.tar")
	if err := syscall.Mkfifo(fifo, 0o622); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(fifo, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.tar")
	if err := os.Symlink(os.DevNull, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 1)
	go func() {
		// The other user's reader; it gets EOF once the test closes
		// its own write end.
		f, err := os.Open(fifo)
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, f)
		f.Close()
		got <- n
	}()
	if _, err := archive.ExportFile(context.Background(), e.m.Store, fifo, []string{"demo"}, archive.ExportOptions{}); err == nil || !strings.Contains(err.Error(), "another user") {
		t.Errorf("export into another user's FIFO: %v", err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if n := <-got; n != 0 {
		t.Errorf("another user's FIFO received %d bytes of the export", n)
	}
	if _, err := archive.ExportFile(context.Background(), e.m.Store, link, []string{"demo"}, archive.ExportOptions{}); err == nil || !strings.Contains(err.Error(), "another user") {
		t.Errorf("export through another user's symlink: %v", err)
	}
	// Ours are written in place.
	if err := os.Lchown(fifo, 0, 0); err != nil {
		t.Fatal(err)
	}
	go func() {
		f, err := os.Open(fifo)
		if err != nil {
			got <- -1
			return
		}
		n, _ := io.Copy(io.Discard, f)
		f.Close()
		got <- n
	}()
	if _, err := archive.ExportFile(context.Background(), e.m.Store, fifo, []string{"demo"}, archive.ExportOptions{}); err != nil {
		t.Fatalf("export into our own FIFO: %v", err)
	}
	if n := <-got; n <= 0 {
		t.Errorf("our FIFO received %d bytes", n)
	}
}
