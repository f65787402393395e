package remote_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/testregistry"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/remote"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orasremote "oras.land/oras-go/v2/registry/remote"
)

// anonymous is a keychain with no credentials, so tests do not read the
// user's docker config.
var anonymous = authn.NewMultiKeychain()

// snap is a snapshot made in a store for a test.
type snap struct {
	store    *oci.Store
	desc     v1.Descriptor
	layer    v1.Descriptor
	config   v1.Descriptor
	metadata []byte
}

// makeSnapshot stores an image of one random (incompressible) layer of
// layerSize bytes, tags it slug and attaches bottle metadata, as bb
// commit does.
func makeSnapshot(t *testing.T, slug string, layerSize int, seed int64) *snap {
	t.Helper()
	return makeSnap(t, slug, layerSize, seed)
}

func makeSnapshotB(b *testing.B, slug string, layerSize int) *snap {
	b.Helper()
	return makeSnap(b, slug, layerSize, 1)
}

func makeSnap(t testing.TB, slug string, layerSize int, seed int64) *snap {
	t.Helper()
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, layerSize)
	rand.New(rand.NewSource(seed)).Read(b)
	ld, err := s.PutBytes(ctx, types.OCIUncompressedLayer, b) // random bytes: diffID = digest
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{ld.Digest}}})
	cd, err := s.PutBytes(ctx, types.OCIConfigJSON, cfg)
	if err != nil {
		t.Fatal(err)
	}
	man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: []v1.Descriptor{ld},
		Annotations: map[string]string{oci.SlugAnnotation: slug, oci.CreatedAnnotation: "2026-01-02T03:04:05Z"}})
	md, err := s.PutBytes(ctx, types.OCIManifestSchema1, man)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, slug, md); err != nil {
		t.Fatal(err)
	}
	meta := []byte(`{"identity":"` + slug + `","agent_name":"claude","cwd":"/work","backend":"dir"}`)
	if _, err := snapshot.PutMetadata(ctx, s, slug, md, meta); err != nil {
		t.Fatal(err)
	}
	return &snap{store: s, desc: md, layer: ld, config: cd, metadata: meta}
}

func newStore(t *testing.T) *oci.Store {
	t.Helper()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wire sits under bb's HTTP client: it counts the request body bytes
// that reach the transport, records chunk requests and can inject
// failures.
type wire struct {
	inner http.RoundTripper

	mu      sync.Mutex
	sent    int64
	patches []string
	// cutPatch, when > 0, makes the body of that PATCH (1-based) fail
	// after cutAfter bytes, once.
	cutPatch int
	cutAfter int64
	// afterPatch is called with the PATCH number after each PATCH
	// response arrives.
	afterPatch func(n int)
	// onBody is called as the body of PATCH n has handed out sent bytes.
	onBody func(n int, sent int64)
}

var errCut = errors.New("connection cut by the test")

func (w *wire) wrap(rt http.RoundTripper) http.RoundTripper { w.inner = rt; return w }

func (w *wire) RoundTrip(req *http.Request) (*http.Response, error) {
	n := 0
	if req.Method == http.MethodPatch {
		w.mu.Lock()
		w.patches = append(w.patches, req.Header.Get("Content-Range"))
		n = len(w.patches)
		w.mu.Unlock()
	}
	if req.Body != nil && req.Body != http.NoBody {
		limit := int64(-1)
		if n > 0 && n == w.cutPatch {
			limit = w.cutAfter
		}
		req.Body = &countingBody{rc: req.Body, w: w, limit: limit, patch: n}
	}
	resp, err := w.inner.RoundTrip(req)
	if err == nil && n > 0 && w.afterPatch != nil {
		w.afterPatch(n)
	}
	return resp, err
}

func (w *wire) bytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent
}

type countingBody struct {
	rc    io.ReadCloser
	w     *wire
	limit int64
	n     int64
	patch int
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.limit >= 0 {
		if c.n >= c.limit {
			return 0, errCut
		}
		if int64(len(p)) > c.limit-c.n {
			p = p[:c.limit-c.n]
		}
	}
	n, err := c.rc.Read(p)
	c.n += int64(n)
	c.w.mu.Lock()
	c.w.sent += int64(n)
	c.w.mu.Unlock()
	if c.patch > 0 && c.w.onBody != nil {
		c.w.onBody(c.patch, c.n)
	}
	return n, err
}

func (c *countingBody) Close() error { return c.rc.Close() }

func statuses(bs []remote.BlobResult) map[remote.BlobStatus]int {
	m := map[remote.BlobStatus]int{}
	for _, b := range bs {
		m[b.Status]++
	}
	return m
}

func blobResult(t *testing.T, bs []remote.BlobResult, h v1.Hash) remote.BlobResult {
	t.Helper()
	for _, b := range bs {
		if b.Digest == h {
			return b
		}
	}
	t.Fatalf("no result for blob %s", h)
	return remote.BlobResult{}
}

// checkPulled pulls ref into a new store and checks it against s.
func checkPulled(t *testing.T, ref string, s *snap, opts remote.Options) *remote.PullResult {
	t.Helper()
	ctx := context.Background()
	dst := newStore(t)
	res, err := remote.Pull(ctx, dst, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != s.desc.Digest || res.Manifest.Size != s.desc.Size {
		t.Fatalf("pulled manifest %v, pushed %v", res.Manifest, s.desc)
	}
	if !bytes.Equal(res.Metadata, s.metadata) {
		t.Fatalf("metadata %q, want %q", res.Metadata, s.metadata)
	}
	for _, h := range []v1.Hash{s.desc.Digest, s.layer.Digest, s.config.Digest} {
		a, err := dst.ReadBlob(ctx, h, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := s.store.ReadBlob(ctx, h, 64<<20)
		if !bytes.Equal(a, b) {
			t.Fatalf("blob %s differs after the round trip", h)
		}
	}
	if ing := storetest.IngestFiles(t, dst); len(ing) != 0 {
		t.Fatalf("temporary files left in the store: %v", ing)
	}
	return res
}

func TestPushPullPlainHTTP(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	s := makeSnapshot(t, "demo", 300<<10, 1)
	ctx := context.Background()
	ref := reg.Repo("bottles/demo:v1")
	res, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{Keychain: anonymous})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != s.desc.Digest || res.Reference != ref {
		t.Fatalf("push result %+v", res)
	}
	if st := statuses(res.Blobs); st[remote.BlobUploaded] != 2 {
		t.Fatalf("blob statuses %v, want 2 uploaded", st)
	}
	if want := s.layer.Size + s.config.Size + s.desc.Size; res.Sent != want {
		t.Fatalf("sent %d bytes, want %d", res.Sent, want)
	}
	if res.Metadata == nil || res.Metadata.ArtifactType != snapshot.MetadataArtifactType {
		t.Fatalf("metadata artifact %+v", res.Metadata)
	}
	if !reg.Has(s.layer.Digest.String()) {
		t.Fatal("layer not in the registry's storage")
	}
	pr := checkPulled(t, ref, s, remote.Options{Keychain: anonymous})
	if pr.Slug != "demo" || pr.MetadataArtifact == nil || pr.MetadataArtifact.Digest != res.Metadata.Digest {
		t.Fatalf("pull result %+v", pr)
	}
	// By digest too.
	checkPulled(t, reg.Repo("bottles/demo@"+s.desc.Digest.String()), s, remote.Options{Keychain: anonymous})

	// A second push sends nothing but the manifest.
	w := &wire{}
	res2, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{Keychain: anonymous, Transport: w.wrap})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(res2.Blobs); st[remote.BlobExists] != 2 {
		t.Fatalf("second push: blob statuses %v, want 2 exists", st)
	}
	if res2.Sent != s.desc.Size || res2.Skipped != s.layer.Size+s.config.Size {
		t.Fatalf("second push sent %d, skipped %d", res2.Sent, res2.Skipped)
	}
	if got := w.bytes(); got > 4<<10 {
		t.Fatalf("second push put %d body bytes on the wire", got)
	}
	if res2.Metadata.Digest != res.Metadata.Digest {
		t.Fatalf("metadata artifact changed on an identical push: %s, then %s", res.Metadata.Digest, res2.Metadata.Digest)
	}

	// The same blobs to another repository: mounted, not sent.
	w2 := &wire{}
	res3, err := remote.Push(ctx, s.store, s.desc, reg.Repo("other/copy"), remote.Options{Keychain: anonymous, Transport: w2.wrap})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(res3.Blobs); st[remote.BlobMounted] != 2 {
		t.Fatalf("push to a second repository: blob statuses %v, want 2 mounted", st)
	}
	if b := blobResult(t, res3.Blobs, s.layer.Digest); b.MountedFrom != "bottles/demo" {
		t.Fatalf("mounted from %q", b.MountedFrom)
	}
	if res3.Mounted != s.layer.Size+s.config.Size || w2.bytes() > 4<<10 {
		t.Fatalf("mounted %d bytes, %d on the wire", res3.Mounted, w2.bytes())
	}
	if len(w2.patches) != 0 {
		t.Fatalf("PATCH requests during a mount: %v", w2.patches)
	}
	checkPulled(t, reg.Repo("other/copy"), s, remote.Options{Keychain: anonymous})
}

func TestChunkedPush(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	const chunk = 64 << 10
	s := makeSnapshot(t, "chunky", 5*chunk+1234, 2)
	w := &wire{}
	res, err := remote.Push(context.Background(), s.store, s.desc, reg.Repo("chunky"), remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w.wrap})
	if err != nil {
		t.Fatal(err)
	}
	lb := blobResult(t, res.Blobs, s.layer.Digest)
	if lb.Status != remote.BlobUploaded || lb.Bytes != s.layer.Size || lb.Requests != 6 {
		t.Fatalf("layer result %+v, want 6 requests of %d bytes in all", lb, s.layer.Size)
	}
	want := []string{"0-65535", "65536-131071", "131072-196607", "196608-262143", "262144-327679", "327680-328913"}
	if strings.Join(w.patches, " ") != strings.Join(want, " ") {
		t.Fatalf("PATCH Content-Range %v, want %v", w.patches, want)
	}
	if cb := blobResult(t, res.Blobs, s.config.Digest); cb.Requests != 1 {
		t.Fatalf("small config blob took %d requests, want 1", cb.Requests)
	}
	checkPulled(t, reg.Repo("chunky"), s, remote.Options{Keychain: anonymous})
	if ents, _ := os.ReadDir(filepath.Join(s.store.Root(), remote.StateDir, "uploads")); len(ents) != 0 {
		t.Fatalf("upload sessions left after a complete push: %v", ents)
	}
}

// A registry killed between two chunks and restarted keeps the upload
// (its state is signed with the fixed http.secret): the next push
// continues from the last accepted chunk.
func TestPushResumesAfterRegistryRestart(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	const chunk = 64 << 10
	s := makeSnapshot(t, "resume", 8*chunk+77, 3)
	ref := reg.Repo("resume")
	w := &wire{afterPatch: func(n int) {
		if n == 3 {
			reg.Kill()
		}
	}}
	_, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w.wrap})
	if err == nil {
		t.Fatal("push succeeded against a killed registry")
	}
	if !strings.Contains(err.Error(), reg.Addr) {
		t.Fatalf("error does not name the registry: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.store.Root(), remote.StateDir, "uploads")); len(ents) == 0 {
		t.Fatal("no upload session saved")
	}
	reg.Restart()
	w2 := &wire{}
	res, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w2.wrap})
	if err != nil {
		t.Fatal(err)
	}
	lb := blobResult(t, res.Blobs, s.layer.Digest)
	if lb.Status != remote.BlobResumed || lb.ResumedAt != 3*chunk {
		t.Fatalf("layer %+v, want resumed at %d", lb, 3*chunk)
	}
	if lb.Bytes != s.layer.Size-3*chunk {
		t.Fatalf("resumed push sent %d layer bytes, want %d", lb.Bytes, s.layer.Size-3*chunk)
	}
	if got, max := w2.bytes(), s.layer.Size-3*chunk+16<<10; got > max {
		t.Fatalf("resumed push put %d body bytes on the wire, want at most %d", got, max)
	}
	if w2.patches[0] != "196608-262143" {
		t.Fatalf("resumed at %q", w2.patches[0])
	}
	checkPulled(t, ref, s, remote.Options{Keychain: anonymous})
}

// A chunk cut off half way leaves distribution with more data than its
// signed upload state says; it drops the session, and the push starts the
// blob over within the same run.
func TestPushRecoversFromCutChunk(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	const chunk = 64 << 10
	s := makeSnapshot(t, "cut", 4*chunk+5, 4)
	ref := reg.Repo("cut")
	w := &wire{cutPatch: 3, cutAfter: chunk / 2}
	res, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w.wrap})
	if err != nil {
		t.Fatal(err)
	}
	lb := blobResult(t, res.Blobs, s.layer.Digest)
	if lb.Restarts != 1 {
		t.Fatalf("layer %+v, want one restart", lb)
	}
	if want := 2*chunk + chunk/2 + s.layer.Size; lb.Bytes < want-32<<10 || lb.Bytes > want {
		t.Fatalf("sent %d layer bytes, want about %d", lb.Bytes, want)
	}
	checkPulled(t, ref, s, remote.Options{Keychain: anonymous})

	// Without in-process retries the push fails; run again, it finds the
	// session gone and starts over (or, if it asked before distribution
	// finished writing the cut chunk, resumes, is refused and starts over).
	s2 := makeSnapshot(t, "cut2", 4*chunk+5, 5)
	w = &wire{cutPatch: 2, cutAfter: 100}
	if _, err := remote.Push(context.Background(), s2.store, s2.desc, reg.Repo("cut2"), remote.Options{Keychain: anonymous, ChunkSize: chunk, Retries: -1, Transport: w.wrap}); err == nil {
		t.Fatal("push with a cut chunk and no retries succeeded")
	}
	res, err = remote.Push(context.Background(), s2.store, s2.desc, reg.Repo("cut2"), remote.Options{Keychain: anonymous, ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	if lb := blobResult(t, res.Blobs, s2.layer.Digest); lb.Status != remote.BlobUploaded || lb.Bytes < s2.layer.Size {
		t.Fatalf("layer %+v, want a full upload", lb)
	}
	checkPulled(t, reg.Repo("cut2"), s2, remote.Options{Keychain: anonymous})
}

func TestIndependentReaders(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	s := makeSnapshot(t, "seen", 100<<10, 6)
	ref := reg.Repo("seen/by:others")
	ctx := context.Background()
	if _, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{Keychain: anonymous}); err != nil {
		t.Fatal(err)
	}
	// go-containerregistry
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ggcrremote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != s.desc.Digest {
		t.Fatalf("go-containerregistry sees %s, pushed %s", d, s.desc.Digest)
	}
	ls, _ := img.Layers()
	rc, err := ls[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(io.Discard, rc); err != nil || n != s.layer.Size {
		t.Fatalf("layer read %d bytes, %v", n, err)
	}
	rc.Close()
	// skopeo
	if sk, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command(sk, "inspect", "--raw", "--tls-verify=false", "docker://"+ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect: %v", err)
		}
		if h, _, _ := v1.SHA256(bytes.NewReader(out)); h != s.desc.Digest {
			t.Fatalf("skopeo sees manifest %s, pushed %s", h, s.desc.Digest)
		}
		out, err = exec.Command(sk, "inspect", "--tls-verify=false", "docker://"+ref).Output()
		if err != nil || !strings.Contains(string(out), s.desc.Digest.String()) {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") != "" {
		t.Fatal("skopeo is missing (apt-get install skopeo)")
	}
	// crane, when installed
	crane, err := exec.LookPath("crane")
	if err != nil {
		if gp, e := exec.Command("go", "env", "GOPATH").Output(); e == nil {
			if p := filepath.Join(strings.TrimSpace(string(gp)), "bin", "crane"); fileExists(p) {
				crane, err = p, nil
			}
		}
	}
	if err == nil {
		out, err := exec.Command(crane, "digest", "--insecure", ref).Output()
		if err != nil || strings.TrimSpace(string(out)) != s.desc.Digest.String() {
			t.Fatalf("crane digest: %q, %v", out, err)
		}
	} else {
		t.Log("crane not installed; skipped")
	}
	// oras-go finds the metadata referrer through the tag-schema fallback.
	repo, err := orasremote.NewRepository(reg.Repo("seen/by"))
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	var refs []ocispec.Descriptor
	err = repo.Referrers(ctx, ocispec.Descriptor{MediaType: string(s.desc.MediaType), Digest: digest.Digest(s.desc.Digest.String()), Size: s.desc.Size}, "", func(r []ocispec.Descriptor) error {
		refs = append(refs, r...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].ArtifactType != snapshot.MetadataArtifactType {
		t.Fatalf("referrers %+v", refs)
	}
	if _, err := repo.Resolve(ctx, strings.Replace(s.desc.Digest.String(), ":", "-", 1)); err != nil {
		t.Fatalf("referrers tag-schema index missing: %v", err)
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// The registry requires htpasswd basic auth over TLS from a CA the test
// made; credentials come from a docker config.json in DOCKER_CONFIG.
func TestAuthTLS(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{Auth: true})
	s := makeSnapshot(t, "secure", 200<<10, 7)
	ctx := context.Background()
	ref := reg.Repo("secure/demo:1")
	cfgDir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", cfgDir)
	t.Setenv("REGISTRY_AUTH_FILE", "")

	// No credentials at all.
	if _, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{CAFile: reg.CAFile}); err == nil ||
		!strings.Contains(err.Error(), "unauthorized") || !strings.Contains(err.Error(), "docker login "+reg.Addr) {
		t.Fatalf("push without credentials: %v", err)
	}
	// A wrong password.
	reg.DockerConfig(cfgDir, "wrong-password")
	_, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{CAFile: reg.CAFile})
	want := "unauthorized: check the credentials for " + reg.Addr + " in " + filepath.Join(cfgDir, "config.json") + " or docker login " + reg.Addr
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("push with a wrong password: %v\nwant it to say %q", err, want)
	}
	if _, err := remote.Pull(ctx, newStore(t), ref, remote.Options{CAFile: reg.CAFile}); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("pull with a wrong password: %v", err)
	}
	// The right one.
	reg.DockerConfig(cfgDir, "")
	// Without the CA, the certificate is refused with advice.
	if _, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{}); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("push without the CA: %v", err)
	}
	res, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{CAFile: reg.CAFile, ChunkSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Metadata == nil {
		t.Fatal("no metadata artifact pushed")
	}
	checkPulled(t, ref, s, remote.Options{CAFile: reg.CAFile})
	// Mount across repositories with credentials.
	res, err = remote.Push(ctx, s.store, s.desc, reg.Repo("secure/other"), remote.Options{CAFile: reg.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if st := statuses(res.Blobs); st[remote.BlobMounted] != 2 {
		t.Fatalf("statuses %v", st)
	}
}

func TestPullRefusesBadInput(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	ctx := context.Background()
	s := makeSnapshot(t, "bad", 10<<10, 8)
	if _, err := remote.Push(ctx, s.store, s.desc, reg.Repo("bad"), remote.Options{Keychain: anonymous}); err != nil {
		t.Fatal(err)
	}
	// A digest that does not match what the registry serves.
	other := strings.Repeat("0", 64)
	if _, err := remote.Pull(ctx, newStore(t), reg.Repo("bad@sha256:"+other), remote.Options{Keychain: anonymous}); err == nil {
		t.Fatal("pull of an unknown digest succeeded")
	}
	// Unknown tag: the error names the repository.
	_, err := remote.Pull(ctx, newStore(t), reg.Repo("bad:nope"), remote.Options{Keychain: anonymous})
	if err == nil || !strings.Contains(err.Error(), reg.Addr+"/bad") {
		t.Fatalf("pull of an unknown tag: %v", err)
	}
	// An image index without an image for this machine is refused with
	// advice (one with, as a bb export pushed by crane, is pulled).
	foreign := s.desc
	foreign.Platform = &v1.Platform{OS: "linux", Architecture: "s390x"}
	if runtime.GOARCH == "s390x" {
		foreign.Platform.Architecture = "ppc64le"
	}
	idx, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{foreign}})
	req, _ := http.NewRequest(http.MethodPut, reg.URL+"/v2/bad/manifests/index", bytes.NewReader(idx))
	req.Header.Set("Content-Type", string(types.OCIImageIndex))
	resp, err := reg.Client().Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("putting an index: %v %v", err, resp)
	}
	resp.Body.Close()
	if _, err := remote.Pull(ctx, newStore(t), reg.Repo("bad:index"), remote.Options{Keychain: anonymous}); err == nil || !strings.Contains(err.Error(), "image index") {
		t.Fatalf("pull of an index: %v", err)
	}
	// An unreachable registry is named.
	dead := testregistry.Start(t, testregistry.Options{})
	dead.Stop()
	if _, err := remote.Pull(ctx, newStore(t), dead.Repo("x"), remote.Options{Keychain: anonymous}); err == nil || !strings.Contains(err.Error(), dead.Addr) {
		t.Fatalf("pull from a stopped registry: %v", err)
	}
}

// An interrupted push (the context cancelled, as Ctrl-C does) lets the
// chunk in flight end, so distribution's signed upload state stays valid:
// the next push asks where the upload stands and continues after it.
func TestPushInterruptedMidChunkResumes(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	const chunk = 64 << 10
	s := makeSnapshot(t, "intr", 8*chunk+99, 6)
	ref := reg.Repo("intr")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &wire{onBody: func(n int, sent int64) {
		if n == 3 && sent >= chunk/2 {
			cancel()
		}
	}}
	if _, err := remote.Push(ctx, s.store, s.desc, ref, remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w.wrap}); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted push: %v, want context.Canceled", err)
	}
	w2 := &wire{}
	res, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{Keychain: anonymous, ChunkSize: chunk, Transport: w2.wrap})
	if err != nil {
		t.Fatal(err)
	}
	lb := blobResult(t, res.Blobs, s.layer.Digest)
	if lb.Status != remote.BlobResumed || lb.ResumedAt != 3*chunk || lb.Restarts != 0 {
		t.Fatalf("layer %+v, want resumed at %d", lb, 3*chunk)
	}
	if lb.Bytes != s.layer.Size-3*chunk {
		t.Fatalf("resumed push sent %d layer bytes, want %d", lb.Bytes, s.layer.Size-3*chunk)
	}
	checkPulled(t, ref, s, remote.Options{Keychain: anonymous})
}

// headFails answers a HEAD of blob digest with 500, as distribution does
// for a blob whose upload a cut connection left behind.
type headFails struct {
	inner  http.RoundTripper
	digest string
}

func (h *headFails) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodHead && strings.HasSuffix(req.URL.Path, "/blobs/"+h.digest) {
		return &http.Response{StatusCode: http.StatusInternalServerError, Status: "500 Internal Server Error",
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return h.inner.RoundTrip(req)
}

// TestPushWhenHeadFails: a 5xx to "do you have this blob?" is no answer;
// the push uploads the blob and the registry's answer to the upload
// decides.
func TestPushWhenHeadFails(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	s := makeSnapshot(t, "headfail", 100<<10, 7)
	ref := reg.Repo("headfail")
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return &headFails{inner: rt, digest: s.layer.Digest.String()}
	}
	res, err := remote.Push(context.Background(), s.store, s.desc, ref, remote.Options{Keychain: anonymous, Transport: wrap})
	if err != nil {
		t.Fatal(err)
	}
	if lb := blobResult(t, res.Blobs, s.layer.Digest); lb.Status != remote.BlobUploaded {
		t.Fatalf("layer %+v, want it uploaded", lb)
	}
	checkPulled(t, ref, s, remote.Options{Keychain: anonymous})
}
