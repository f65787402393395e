package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// noTempFiles checks that no upload left a temporary file in the store.
func noTempFiles(t *testing.T, s *oci.Store) {
	t.Helper()
	files := storetest.IngestFiles(t, s)
	if len(files) != 0 {
		t.Errorf("temporary files left in the store: %v", files)
	}
}

// abs resolves a Location header against the server.
func abs(t *testing.T, srv *registry.Server, loc string) string {
	t.Helper()
	base, _ := url.Parse(srv.URL() + "/")
	u, err := base.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q: %v", loc, err)
	}
	return u.String()
}

func TestRemotePush(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true})
	img, err := random.Image(512<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	for _, tag := range []string{"v1", "latest"} {
		ref, _ := name.ParseReference(srv.Ref("pushed", tag))
		if err := remote.Write(ref, img); err != nil {
			t.Fatalf("pushing %s: %v", ref, err)
		}
		back, err := remote.Image(ref)
		if err != nil {
			t.Fatal(err)
		}
		if d, _ := back.Digest(); d != want {
			t.Errorf("%s: pulled %s, pushed %s", ref, d, want)
		}
		if err := validate.Image(back); err != nil {
			t.Error(err)
		}
	}
	for _, st := range []string{"pushed", "pushed-v1"} {
		d, err := f.store.Resolve(t.Context(), st)
		if err != nil || d.Digest != want || d.Annotations[oci.SlugAnnotation] != "pushed" {
			t.Errorf("store tag %s: %+v (%v)", st, d, err)
		}
		// The store reads it as any other image.
		si, err := f.store.Image(t.Context(), d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate.Image(si); err != nil {
			t.Errorf("store image %s: %v", st, err)
		}
	}
	// An index and its children.
	ii, err := random.Index(256<<10, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(srv.Ref("multi", "latest"))
	if err := remote.WriteIndex(iref, ii); err != nil {
		t.Fatal(err)
	}
	back, err := remote.Index(iref)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(back); err != nil {
		t.Error(err)
	}
	repo, _ := name.NewRepository(srv.Addr() + "/pushed")
	// latest got a history tag, as a commit would.
	tags, _ := remote.List(repo)
	if len(tags) != 3 || !regexp.MustCompile(`^\d{8}T\d{6}\.\d{3}Z-[0-9a-z]{4}$`).MatchString(tags[0]) || fmt.Sprint(tags[1:]) != "[latest v1]" {
		t.Errorf("tags %v", tags)
	}
	noTempFiles(t, f.store)
}

func TestChunkedUpload(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true})
	blob := randomBytes(7, 4000)
	d := digestOf(blob)
	r := do(t, "POST", srv.URL()+"/v2/up/blobs/uploads/", nil).expect(t, 202, "")
	loc := r.Header.Get("Location")
	id := r.Header.Get("Docker-Upload-UUID")
	if loc == "" || id == "" || !strings.Contains(loc, id) || r.Header.Get("Range") != "0-0" {
		t.Fatalf("POST: Location %q, UUID %q, Range %q", loc, id, r.Header.Get("Range"))
	}
	u := abs(t, srv, loc)
	patch := func(from, to int, cr bool) response {
		h := []string{"Content-Type", "application/octet-stream"}
		if cr {
			h = append(h, "Content-Range", fmt.Sprintf("%d-%d", from, to-1))
		}
		return do(t, "PATCH", u, bytes.NewReader(blob[from:to]), h...)
	}
	r = patch(0, 1000, true).expect(t, 202, "")
	if r.Header.Get("Range") != "0-999" || r.Header.Get("Docker-Upload-UUID") != id {
		t.Errorf("PATCH: Range %q", r.Header.Get("Range"))
	}
	u = abs(t, srv, r.Header.Get("Location"))
	// Out of order: refused with 416 and where the upload stands.
	r = patch(2000, 3000, true).expect(t, 416, "BLOB_UPLOAD_INVALID")
	if r.Header.Get("Range") != "0-999" || r.Header.Get("Location") == "" {
		t.Errorf("416: Range %q, Location %q", r.Header.Get("Range"), r.Header.Get("Location"))
	}
	r = do(t, "GET", u, nil).expect(t, 204, "")
	if r.Header.Get("Range") != "0-999" || r.Header.Get("Docker-Upload-UUID") != id {
		t.Errorf("status: Range %q", r.Header.Get("Range"))
	}
	patch(1000, 3000, true).expect(t, 202, "")
	r = patch(3000, 3500, false).expect(t, 202, "") // streamed chunk, no Content-Range
	if r.Header.Get("Range") != "0-3499" {
		t.Errorf("streamed PATCH: Range %q", r.Header.Get("Range"))
	}
	// The closing PUT carries the last bytes.
	r = do(t, "PUT", u+"?digest="+d.String(), bytes.NewReader(blob[3500:]), "Content-Type", "application/octet-stream").expect(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d.String() || r.Header.Get("Location") != "/v2/up/blobs/"+d.String() {
		t.Errorf("PUT: digest %q, Location %q", r.Header.Get("Docker-Content-Digest"), r.Header.Get("Location"))
	}
	if n, err := f.store.Stat(t.Context(), d); err != nil || n != 4000 {
		t.Errorf("blob in store: %d (%v)", n, err)
	}
	r = do(t, "HEAD", srv.URL()+"/v2/up/blobs/"+d.String(), nil).expect(t, 200, "")
	if r.ContentLength != 4000 {
		t.Errorf("HEAD: %d", r.ContentLength)
	}
	do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	// A session belongs to its repository.
	r = do(t, "POST", srv.URL()+"/v2/up/blobs/uploads/", nil).expect(t, 202, "")
	other := strings.Replace(abs(t, srv, r.Header.Get("Location")), "/v2/up/", "/v2/down/", 1)
	do(t, "GET", other, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	do(t, "DELETE", abs(t, srv, r.Header.Get("Location")), nil).expect(t, 204, "")
	noTempFiles(t, f.store)
}

func TestUploadFailures(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true})
	base := srv.URL() + "/v2/up/blobs/uploads/"
	blob := randomBytes(9, 3000)
	d := digestOf(blob)
	wrong := digestOf([]byte("something else"))
	open := func() string {
		r := do(t, "POST", base, nil).expect(t, 202, "")
		return abs(t, srv, r.Header.Get("Location"))
	}

	t.Run("wrong digest", func(t *testing.T) {
		u := open()
		do(t, "PATCH", u, bytes.NewReader(blob)).expect(t, 202, "")
		do(t, "PUT", u+"?digest="+wrong.String(), nil).expect(t, 400, "DIGEST_INVALID")
		do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		if _, err := f.store.Stat(t.Context(), wrong); err == nil {
			t.Error("a blob under the wrong digest")
		}
		noTempFiles(t, f.store)
	})
	t.Run("missing digest", func(t *testing.T) {
		// A failed PUT ends the upload and removes its data.
		u := open()
		do(t, "PATCH", u, bytes.NewReader(blob)).expect(t, 202, "")
		do(t, "PUT", u, nil).expect(t, 400, "DIGEST_INVALID")
		do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		u = open()
		do(t, "PATCH", u, bytes.NewReader(blob)).expect(t, 202, "")
		do(t, "PUT", u+"?digest=sha256:nope", nil).expect(t, 400, "DIGEST_INVALID")
		do(t, "DELETE", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		u = open()
		do(t, "PUT", u+"?digest=md5:"+strings.Repeat("a", 32), nil).expect(t, 400, "DIGEST_INVALID")
		noTempFiles(t, f.store)
	})
	t.Run("cancel", func(t *testing.T) {
		u := open()
		do(t, "PATCH", u, bytes.NewReader(blob)).expect(t, 202, "")
		if files := storetest.IngestFiles(t, f.store); len(files) != 1 {
			t.Errorf("an open upload has %d temporary files", len(files))
		}
		do(t, "DELETE", u, nil).expect(t, 204, "")
		do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		do(t, "DELETE", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		noTempFiles(t, f.store)
	})
	t.Run("chunk shorter than its range", func(t *testing.T) {
		u := open()
		// Content-Length comes from the body; Content-Range claims more.
		do(t, "PATCH", u, bytes.NewReader(blob[:100]), "Content-Range", "0-199").expect(t, 400, "SIZE_INVALID")
		do(t, "PATCH", u, bytes.NewReader(blob[:100]), "Content-Range", "0-99").expect(t, 202, "")
		do(t, "PATCH", u, bytes.NewReader(blob[:10]), "Content-Range", "99-100").expect(t, 416, "BLOB_UPLOAD_INVALID")
		do(t, "PATCH", u, bytes.NewReader(blob[:10]), "Content-Range", "bad").expect(t, 400, "BLOB_UPLOAD_INVALID")
		// Streamed (no Content-Length) and shorter than its range: the
		// upload can no longer be trusted and is cancelled.
		do(t, "PATCH", u, io.MultiReader(bytes.NewReader(blob[100:150])), "Content-Range", "100-199").expect(t, 400, "BLOB_UPLOAD_INVALID")
		do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
		noTempFiles(t, f.store)
	})
	t.Run("monolithic", func(t *testing.T) {
		r := do(t, "POST", base+"?digest="+d.String(), bytes.NewReader(blob), "Content-Type", "application/octet-stream").expect(t, 201, "")
		if r.Header.Get("Location") != "/v2/up/blobs/"+d.String() || r.Header.Get("Docker-Content-Digest") != d.String() {
			t.Errorf("Location %q", r.Header.Get("Location"))
		}
		if n, err := f.store.Stat(t.Context(), d); err != nil || n != 3000 {
			t.Errorf("blob: %d (%v)", n, err)
		}
		do(t, "POST", base+"?digest="+wrong.String(), bytes.NewReader(blob)).expect(t, 400, "DIGEST_INVALID")
		noTempFiles(t, f.store)
	})
	t.Run("mount", func(t *testing.T) {
		l := f.demo.Layer.Digest.String()
		r := do(t, "POST", base+"?mount="+l+"&from=demo", nil).expect(t, 201, "")
		if r.Header.Get("Location") != "/v2/up/blobs/"+l || r.Header.Get("Docker-Content-Digest") != l {
			t.Errorf("mount: Location %q", r.Header.Get("Location"))
		}
		// Missing blob: a new session instead.
		r = do(t, "POST", base+"?mount="+wrong.String()+"&from=demo", nil).expect(t, 202, "")
		do(t, "DELETE", abs(t, srv, r.Header.Get("Location")), nil).expect(t, 204, "")
		noTempFiles(t, f.store)
	})
}

func TestUploadLimits(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true, MaxUploads: 2, UploadIdleTimeout: time.Second})
	base := srv.URL() + "/v2/up/blobs/uploads/"
	// At the cap, a new upload evicts the one idle the longest.
	old := abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "PATCH", old, strings.NewReader("abandoned")).expect(t, 202, "")
	a := abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "PATCH", a, strings.NewReader("some bytes")).expect(t, 202, "")
	b := abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "GET", old, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	do(t, "GET", a, nil).expect(t, 204, "")
	if files := storetest.IngestFiles(t, f.store); len(files) != 2 {
		t.Errorf("temp files after an eviction: %v", files)
	}
	// Keep b busy (a request every 200 ms, well within the timeout) until
	// a's idle timer discarded a and its temporary file. The test waits
	// for that rather than for a fixed time: on a loaded machine the
	// timer may run late, and a request before it runs would revive a.
	waitFiles := func(n int, each func()) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(storetest.IngestFiles(t, f.store)) > n {
			if time.Now().After(deadline) {
				t.Fatalf("temporary files %v: an upload idle past its timeout was not discarded", storetest.IngestFiles(t, f.store))
			}
			each()
		}
	}
	waitFiles(1, func() {
		time.Sleep(200 * time.Millisecond)
		do(t, "GET", b, nil).expect(t, 204, "")
	})
	do(t, "GET", a, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	// Left alone, b goes too.
	waitFiles(0, func() { time.Sleep(50 * time.Millisecond) })
	do(t, "GET", b, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	noTempFiles(t, f.store)
	// Close discards open sessions.
	c := abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "PATCH", c, strings.NewReader("more bytes")).expect(t, 202, "")
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, f.store)
}

// putManifest pushes raw as a manifest.
func putManifest(t *testing.T, u, mt string, raw []byte) response {
	t.Helper()
	return do(t, "PUT", u, bytes.NewReader(raw), "Content-Type", mt)
}

func TestManifestPush(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true})
	base := srv.URL() + "/v2/"
	ctx := t.Context()
	raw, _ := f.store.ReadBlob(ctx, f.other.Manifest.Digest, 1<<20)
	var m v1.Manifest
	_ = json.Unmarshal(raw, &m)
	mt := string(types.OCIManifestSchema1)

	// A copy of other's snapshot under a new repository.
	r := putManifest(t, base+"copy/manifests/latest", mt, raw).expect(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != f.other.Manifest.Digest.String() ||
		r.Header.Get("Location") != "/v2/copy/manifests/"+f.other.Manifest.Digest.String() {
		t.Errorf("PUT: digest %q, Location %q", r.Header.Get("Docker-Content-Digest"), r.Header.Get("Location"))
	}
	do(t, "GET", base+"copy/manifests/latest", nil).expect(t, 200, "")

	missing := m
	missing.Layers = append([]v1.Descriptor{}, m.Layers...)
	missing.Layers[0].Digest = digestOf([]byte("not pushed"))
	b, _ := json.Marshal(missing)
	putManifest(t, base+"copy/manifests/broken", mt, b).expect(t, 400, "MANIFEST_BLOB_UNKNOWN")
	do(t, "GET", base+"copy/manifests/broken", nil).expect(t, 404, "MANIFEST_UNKNOWN")

	wrongSize := m
	wrongSize.Layers = append([]v1.Descriptor{}, m.Layers...)
	wrongSize.Layers[0].Size++
	b, _ = json.Marshal(wrongSize)
	putManifest(t, base+"copy/manifests/broken", mt, b).expect(t, 400, "MANIFEST_INVALID")
	putManifest(t, base+"copy/manifests/broken", string(types.DockerManifestSchema2), raw).expect(t, 400, "MANIFEST_INVALID")
	putManifest(t, base+"copy/manifests/broken", mt, []byte("{not json")).expect(t, 400, "MANIFEST_INVALID")
	putManifest(t, base+"copy/manifests/broken", mt, []byte(`{"schemaVersion":1}`)).expect(t, 400, "MANIFEST_INVALID")
	putManifest(t, base+"copy/manifests/broken", "application/x-thing", []byte(`{"schemaVersion":2,"mediaType":"application/x-thing","config":{}}`)).expect(t, 415, "MANIFEST_INVALID")
	putManifest(t, base+"copy/manifests/broken", mt, bytes.Repeat([]byte(" "), oci.MaxManifestSize+1)).expect(t, 413, "SIZE_INVALID")
	putManifest(t, base+"copy/manifests/bad:tag", mt, raw).expect(t, 400, "DIGEST_INVALID")
	putManifest(t, base+"copy/manifests/"+strings.Repeat("t", 125), mt, raw).expect(t, 400, "MANIFEST_INVALID")
	putManifest(t, base+"a/b/manifests/latest", mt, raw).expect(t, 201, "")
	if d, _ := f.store.Resolve(ctx, "a___b"); d.Digest != f.other.Manifest.Digest {
		t.Error("nested repository a/b is not store tag a___b")
	}
	putManifest(t, base+"A/b/manifests/latest", mt, raw).expect(t, 400, "NAME_INVALID")
	// By digest: the digest must match.
	putManifest(t, base+"copy/manifests/"+digestOf([]byte("x")).String(), mt, raw).expect(t, 400, "DIGEST_INVALID")
	// Not even under the digest of another manifest of the same size the
	// store has.
	padded := []byte(strings.Replace(string(raw), "{", "{ ", 1))
	putManifest(t, base+"copy/manifests/"+digestOf(padded).String(), mt, padded).expect(t, 201, "")
	twin := []byte(strings.Replace(string(raw), "{", "{\t", 1))
	putManifest(t, base+"copy/manifests/"+digestOf(padded).String(), mt, twin).expect(t, 400, "DIGEST_INVALID")
	putManifest(t, base+"copy/manifests/"+f.other.Manifest.Digest.String(), mt, raw).expect(t, 201, "")
	// By digest with tags: each becomes a store tag, and OCI-Tag says so.
	r = putManifest(t, base+"team/copy/manifests/"+f.other.Manifest.Digest.String()+"?tag=t1&tag=t2", mt, raw).expect(t, 201, "")
	if got := r.Header.Values("OCI-Tag"); fmt.Sprint(got) != "[t1 t2]" {
		t.Errorf("OCI-Tag %v", got)
	}
	for _, st := range []string{"team___copy-t1", "team___copy-t2"} {
		if d, err := f.store.Resolve(ctx, st); err != nil || d.Digest != f.other.Manifest.Digest {
			t.Errorf("store tag %s: %+v (%v)", st, d, err)
		}
	}
	putManifest(t, base+"copy/manifests/"+f.other.Manifest.Digest.String()+"?tag=bad:tag", mt, raw).expect(t, 400, "MANIFEST_INVALID")

	// A tag must not take over another slug's store tag: demo's history
	// tag demo-<time> is not repository demo-<time>'s latest.
	// (Time tags carry capitals, which no repository name may, so the
	// collision is shown with a lowercase tag.)
	putManifest(t, base+f.demoOld.TimeTag+"/manifests/latest", mt, raw).expect(t, 400, "NAME_INVALID")
	putManifest(t, base+"demo/manifests/v1", mt, raw).expect(t, 201, "")
	putManifest(t, base+"demo-v1/manifests/latest", mt, []byte(strings.Replace(string(raw), "{", "{ ", 1))).expect(t, 403, "DENIED")
	if d, _ := f.store.Resolve(ctx, f.demoOld.TimeTag); d.Digest != f.demoOld.Manifest.Digest {
		t.Error("push replaced another slug's snapshot")
	}
	// The slug's own tags can be replaced.
	putManifest(t, base+"demo/manifests/latest", mt, raw).expect(t, 201, "")
	if d, _ := f.store.Resolve(ctx, "demo"); d.Digest != f.other.Manifest.Digest {
		t.Error("demo:latest not replaced")
	}

	// A referrer pushed by digest is recorded and listed.
	subject := v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: f.other.Manifest.Digest, Size: f.other.Manifest.Size}
	empty := []byte("{}")
	do(t, "POST", base+"copy/blobs/uploads/?digest="+digestOf(empty).String(), bytes.NewReader(empty)).expect(t, 201, "")
	art := map[string]any{
		"schemaVersion": 2, "mediaType": mt, "artifactType": "application/vnd.example.sig",
		"config":  v1.Descriptor{MediaType: "application/vnd.oci.empty.v1+json", Digest: digestOf(empty), Size: 2},
		"layers":  []v1.Descriptor{{MediaType: "application/vnd.oci.empty.v1+json", Digest: digestOf(empty), Size: 2}},
		"subject": subject,
	}
	ab, _ := json.Marshal(art)
	r = putManifest(t, base+"copy/manifests/"+digestOf(ab).String(), mt, ab).expect(t, 201, "")
	if r.Header.Get("OCI-Subject") != subject.Digest.String() {
		t.Errorf("OCI-Subject %q", r.Header.Get("OCI-Subject"))
	}
	r = do(t, "GET", base+"copy/referrers/"+subject.Digest.String(), nil).expect(t, 200, "")
	var idx v1.IndexManifest
	_ = json.Unmarshal(r.body, &idx)
	found := map[string]bool{}
	for _, m := range idx.Manifests {
		found[m.ArtifactType] = true
	}
	if !found["application/vnd.example.sig"] || !found["application/vnd.bot-bottle.metadata.v1+json"] {
		t.Errorf("referrers %s", r.body)
	}
	// Through go-containerregistry too.
	repo, _ := name.NewRepository(srv.Addr() + "/copy")
	ri, err := remote.Referrers(repo.Digest(subject.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	if im, _ := ri.IndexManifest(); len(im.Manifests) != 2 {
		t.Errorf("remote.Referrers: %d", len(im.Manifests))
	}
	// GC keeps the pushed referrer (it is in index.json).
	st, _ := f.store.Index(ctx)
	kept := false
	for _, e := range st.Manifests {
		kept = kept || e.Digest == digestOf(ab)
	}
	if !kept {
		t.Error("referrer pushed by digest is not in index.json")
	}
	noTempFiles(t, f.store)
}
