package registry_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func TestRemotePull(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	if got, want := srv.Ref("demo", "latest"), "localhost:"+strconv.Itoa(srv.Port())+"/demo:latest"; got != want {
		t.Fatalf("Ref = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		ref  string
		want *snapshot.Result
	}{
		{srv.Ref("demo", "latest"), f.demo},
		{srv.Ref("demo", strings.TrimPrefix(f.demoOld.TimeTag, "demo-")), f.demoOld},
		{srv.Ref("demo", f.demoOld.Manifest.Digest.String()), f.demoOld},
		{srv.Addr() + "/other:latest", f.other},
	} {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref)
		if err != nil {
			t.Fatalf("pulling %s: %v", tc.ref, err)
		}
		d, _ := img.Digest()
		if d != tc.want.Manifest.Digest {
			t.Errorf("%s: digest %s, want %s", tc.ref, d, tc.want.Manifest.Digest)
		}
		// validate.Image reads every layer and checks digests and diffIDs.
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: %v", tc.ref, err)
		}
	}
	repo, _ := name.NewRepository(srv.Addr() + "/demo")
	tags, err := remote.List(repo)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{strings.TrimPrefix(f.demoOld.TimeTag, "demo-"), strings.TrimPrefix(f.demo.TimeTag, "demo-"), "latest"}
	if fmt.Sprint(tags) != fmt.Sprint(want) {
		t.Errorf("tags %v, want %v", tags, want)
	}
	// Page by one: go-containerregistry follows the Link headers.
	tags, err = remote.List(repo, remote.WithPageSize(1))
	if err != nil || fmt.Sprint(tags) != fmt.Sprint(want) {
		t.Errorf("paged tags %v (%v), want %v", tags, err, want)
	}
	reg, _ := name.NewRegistry(srv.Addr())
	repos, err := remote.Catalog(t.Context(), reg)
	if err != nil || fmt.Sprint(repos) != "[demo other]" {
		t.Errorf("catalog %v (%v)", repos, err)
	}
	// The bottle's metadata is a referrer of the snapshot.
	idx, err := remote.Referrers(repo.Digest(f.demo.Manifest.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].ArtifactType != snapshot.MetadataArtifactType {
		t.Fatalf("referrers of %s: %+v", f.demo.Manifest.Digest, im.Manifests)
	}
	art, err := remote.Image(repo.Digest(im.Manifests[0].Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := art.Layers()
	rc, _ := ls[0].Compressed()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(rc)
	if !strings.Contains(buf.String(), `"identity":"demo"`) {
		t.Errorf("metadata %q", buf.String())
	}
}

func TestManifestEndpoints(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	base := srv.URL() + "/v2/"
	r := do(t, "GET", base, nil).expect(t, 200, "")
	if string(r.body) != "{}" {
		t.Errorf("/v2/ body %q", r.body)
	}
	raw, err := f.store.ReadBlob(t.Context(), f.demo.Manifest.Digest, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"latest", f.demo.Manifest.Digest.String()} {
		for _, m := range []string{"GET", "HEAD"} {
			r := do(t, m, base+"demo/manifests/"+ref, nil, "Accept", string(types.OCIManifestSchema1)+", "+string(types.DockerManifestSchema2)).expect(t, 200, "")
			if ct := r.Header.Get("Content-Type"); ct != string(types.OCIManifestSchema1) {
				t.Errorf("%s %s: Content-Type %q", m, ref, ct)
			}
			if d := r.Header.Get("Docker-Content-Digest"); d != f.demo.Manifest.Digest.String() {
				t.Errorf("%s %s: Docker-Content-Digest %q", m, ref, d)
			}
			if r.ContentLength != int64(len(raw)) {
				t.Errorf("%s %s: Content-Length %d, want %d", m, ref, r.ContentLength, len(raw))
			}
			if m == "GET" && !bytes.Equal(r.body, raw) {
				t.Errorf("GET %s: body differs from the store's manifest", ref)
			}
		}
	}
	// A client that lists only other manifest types gets MANIFEST_UNKNOWN.
	do(t, "GET", base+"demo/manifests/latest", nil, "Accept", string(types.DockerManifestSchema2)).expect(t, 404, "MANIFEST_UNKNOWN")
	// No Accept, or a wildcard, gets the manifest.
	do(t, "GET", base+"demo/manifests/latest", nil, "Accept", "*/*").expect(t, 200, "")
	do(t, "GET", base+"demo/manifests/nope", nil).expect(t, 404, "MANIFEST_UNKNOWN")
	do(t, "HEAD", base+"demo/manifests/nope", nil).expect(t, 404, "MANIFEST_UNKNOWN")
	do(t, "GET", base+"ghost/manifests/latest", nil).expect(t, 404, "NAME_UNKNOWN")
	do(t, "GET", base+"demo/manifests/sha256:1234", nil).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", base+"demo/manifests/sha512:"+strings.Repeat("a", 128), nil).expect(t, 404, "MANIFEST_UNKNOWN")
	do(t, "GET", base+"demo/manifests/sha384:"+strings.Repeat("a", 96), nil).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", base+"demo/manifests/sha512:"+strings.Repeat("a", 64), nil).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", base+"demo/manifests/sha256:"+strings.Repeat("a", 64), nil).expect(t, 404, "MANIFEST_UNKNOWN")
	// A layer is a blob, not a manifest.
	do(t, "GET", base+"demo/manifests/"+f.demo.Layer.Digest.String(), nil).expect(t, 404, "MANIFEST_UNKNOWN")
	do(t, "GET", base+"Bad..Name/manifests/latest", nil).expect(t, 400, "NAME_INVALID")
	// A nested name is valid; this one is not in the store.
	do(t, "GET", base+"library/demo/manifests/latest", nil).expect(t, 404, "NAME_UNKNOWN")
	do(t, "GET", base+"library//demo/manifests/latest", nil).expect(t, 400, "NAME_INVALID")
	// A valid name whose store name would be too long: 404 with the reason.
	long := strings.Repeat("abcdefghi/", 12) + "x"
	r = do(t, "GET", base+long+"/manifests/latest", nil).expect(t, 404, "NAME_UNKNOWN")
	if !strings.Contains(string(r.body), "100 characters") {
		t.Errorf("unmappable name: %s", r.body)
	}
	// HEAD has no body: the reason is in a Warning header.
	r = do(t, "HEAD", base+long+"/manifests/latest", nil).expect(t, 404, "")
	if w := r.Header.Get("Warning"); !strings.Contains(w, "NAME_UNKNOWN") || !strings.Contains(w, "100 characters") {
		t.Errorf("HEAD of an unmappable name: Warning %q", w)
	}
	do(t, "GET", srv.URL()+"/v3/", nil).expect(t, 404, "UNSUPPORTED")
	// Manifests by digest resolve under any repository: all share the store.
	do(t, "GET", base+"other/manifests/"+f.demo.Manifest.Digest.String(), nil).expect(t, 200, "")
}

func TestBlobEndpoints(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	l := f.demo.Layer
	u := srv.URL() + "/v2/demo/blobs/" + l.Digest.String()
	blob, err := f.store.ReadBlob(t.Context(), l.Digest, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	r := do(t, "HEAD", u, nil).expect(t, 200, "")
	if r.ContentLength != l.Size || r.Header.Get("Docker-Content-Digest") != l.Digest.String() || len(r.body) != 0 {
		t.Errorf("HEAD: Content-Length %d (want %d), digest %q, body %d bytes", r.ContentLength, l.Size, r.Header.Get("Docker-Content-Digest"), len(r.body))
	}
	if r.Header.Get("Accept-Ranges") != "bytes" {
		t.Errorf("HEAD: Accept-Ranges %q", r.Header.Get("Accept-Ranges"))
	}
	r = do(t, "GET", u, nil).expect(t, 200, "")
	if digestOf(r.body) != l.Digest {
		t.Error("GET: body does not hash to the digest")
	}
	r = do(t, "GET", u, nil, "Range", "bytes=100-199").expect(t, 206, "")
	if !bytes.Equal(r.body, blob[100:200]) || r.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", l.Size) {
		t.Errorf("Range: %d bytes, Content-Range %q", len(r.body), r.Header.Get("Content-Range"))
	}
	r = do(t, "GET", u, nil, "Range", fmt.Sprintf("bytes=%d-", l.Size-10)).expect(t, 206, "")
	if !bytes.Equal(r.body, blob[l.Size-10:]) {
		t.Error("open-ended Range: wrong bytes")
	}
	r = do(t, "GET", u, nil, "Range", fmt.Sprintf("bytes=%d-", l.Size+5)).expect(t, 416, "RANGE_INVALID")
	if r.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", l.Size) {
		t.Errorf("416: Content-Range %q", r.Header.Get("Content-Range"))
	}
	// Blobs are shared by every repository.
	do(t, "HEAD", srv.URL()+"/v2/other/blobs/"+l.Digest.String(), nil).expect(t, 200, "")
	do(t, "GET", srv.URL()+"/v2/demo/blobs/sha256:"+strings.Repeat("0", 64), nil).expect(t, 404, "BLOB_UNKNOWN")
	do(t, "HEAD", srv.URL()+"/v2/demo/blobs/sha256:"+strings.Repeat("0", 64), nil).expect(t, 404, "BLOB_UNKNOWN")
	do(t, "GET", srv.URL()+"/v2/demo/blobs/sha256:zz", nil).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", srv.URL()+"/v2/demo/blobs/md5:"+strings.Repeat("0", 32), nil).expect(t, 400, "DIGEST_INVALID")
	// Through go-containerregistry: a layer fetched by digest, with Range.
	repo, _ := name.NewRepository(srv.Addr() + "/demo")
	lyr, err := remote.Layer(repo.Digest(l.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	if n, err := lyr.Size(); err != nil || n != l.Size {
		t.Errorf("remote.Layer size %d (%v)", n, err)
	}
}

func TestListsAndPagination(t *testing.T) {
	f := newFixture(t)
	for i := 0; i < 3; i++ {
		commit(t, f.store, "demo", time.Date(2025, 3, 2, i, 0, 0, 0, time.UTC), 1024)
	}
	srv := start(t, f.store, registry.Options{})
	base := srv.URL()
	type tagList struct {
		Name string
		Tags []string
	}
	all := tagList{}
	_ = json.Unmarshal(do(t, "GET", base+"/v2/demo/tags/list", nil).expect(t, 200, "").body, &all)
	if all.Name != "demo" || len(all.Tags) != 6 || all.Tags[len(all.Tags)-1] != "latest" {
		t.Fatalf("tags %+v", all)
	}
	// Follow Link headers two at a time.
	var got []string
	next := "/v2/demo/tags/list?n=2"
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := do(t, "GET", base+next, nil).expect(t, 200, "")
		var tl tagList
		_ = json.Unmarshal(r.body, &tl)
		if len(tl.Tags) > 2 {
			t.Fatalf("page of %d tags with n=2", len(tl.Tags))
		}
		got = append(got, tl.Tags...)
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			if !strings.HasSuffix(l, `>; rel="next"`) || !strings.HasPrefix(l, "</v2/demo/tags/list?") {
				t.Fatalf("Link %q", l)
			}
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(all.Tags) {
		t.Errorf("paged %v, want %v", got, all.Tags)
	}
	var tl tagList
	r := do(t, "GET", base+"/v2/demo/tags/list?n=10&last="+all.Tags[3], nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &tl)
	if fmt.Sprint(tl.Tags) != fmt.Sprint(all.Tags[4:]) || r.Header.Get("Link") != "" {
		t.Errorf("after %s: %v, Link %q", all.Tags[3], tl.Tags, r.Header.Get("Link"))
	}
	r = do(t, "GET", base+"/v2/demo/tags/list?n=0", nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &tl)
	if len(tl.Tags) != 0 || tl.Tags == nil {
		t.Errorf("n=0: %s", r.body)
	}
	do(t, "GET", base+"/v2/demo/tags/list?n=-1", nil).expect(t, 400, "PAGINATION_NUMBER_INVALID")
	do(t, "GET", base+"/v2/ghost/tags/list", nil).expect(t, 404, "NAME_UNKNOWN")
	var cat struct{ Repositories []string }
	r = do(t, "GET", base+"/v2/_catalog?n=1", nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &cat)
	if fmt.Sprint(cat.Repositories) != "[demo]" || r.Header.Get("Link") != `</v2/_catalog?last=demo&n=1>; rel="next"` {
		t.Errorf("catalog page: %v, Link %q", cat.Repositories, r.Header.Get("Link"))
	}
	r = do(t, "GET", base+"/v2/_catalog?n=1&last=demo", nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &cat)
	if fmt.Sprint(cat.Repositories) != "[other]" {
		t.Errorf("catalog page 2: %v", cat.Repositories)
	}
}

func TestReferrersEndpoint(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	u := srv.URL() + "/v2/demo/referrers/" + f.demo.Manifest.Digest.String()
	r := do(t, "GET", u, nil).expect(t, 200, "")
	if r.Header.Get("Content-Type") != string(types.OCIImageIndex) {
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(r.body, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("referrers %s (%v)", r.body, err)
	}
	m := idx.Manifests[0]
	if m.ArtifactType != snapshot.MetadataArtifactType || m.MediaType != types.OCIManifestSchema1 || m.Size == 0 {
		t.Errorf("referrer %+v", m)
	}
	r = do(t, "GET", u+"?artifactType=application/x-other", nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &idx)
	if len(idx.Manifests) != 0 || r.Header.Get("OCI-Filters-Applied") != "artifactType" {
		t.Errorf("filtered referrers %s, header %q", r.body, r.Header.Get("OCI-Filters-Applied"))
	}
	r = do(t, "GET", u+"?artifactType="+url.QueryEscape(snapshot.MetadataArtifactType), nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &idx)
	if len(idx.Manifests) != 1 {
		t.Errorf("filtered referrers %s", r.body)
	}
	// An unknown subject has an empty list, not an error.
	r = do(t, "GET", srv.URL()+"/v2/demo/referrers/sha256:"+strings.Repeat("1", 64), nil).expect(t, 200, "")
	_ = json.Unmarshal(r.body, &idx)
	if len(idx.Manifests) != 0 {
		t.Errorf("referrers of nothing: %s", r.body)
	}
	do(t, "GET", srv.URL()+"/v2/demo/referrers/latest", nil).expect(t, 400, "DIGEST_INVALID")
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	base := srv.URL() + "/v2/demo/"
	for _, c := range []struct{ method, path string }{
		{"POST", "blobs/uploads/"},
		{"POST", "blobs/uploads/?digest=" + f.demo.Layer.Digest.String()},
		{"PATCH", "blobs/uploads/1234"},
		{"PUT", "blobs/uploads/1234?digest=" + f.demo.Layer.Digest.String()},
		{"DELETE", "blobs/uploads/1234"},
		{"PUT", "manifests/latest"},
		{"DELETE", "manifests/latest"},
		{"DELETE", "blobs/" + f.demo.Layer.Digest.String()},
	} {
		r := do(t, c.method, base+c.path, strings.NewReader("{}")).expect(t, 405, "UNSUPPORTED")
		flag := "--allow-push"
		if c.method == "DELETE" && !strings.Contains(c.path, "uploads") {
			flag = "--allow-delete"
		}
		if !strings.Contains(string(r.body), flag) {
			t.Errorf("%s %s: message does not name %s: %s", c.method, c.path, flag, r.body)
		}
	}
	do(t, "GET", base+"blobs/uploads/1234", nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	ingest := storetest.IngestFiles(t, f.store)
	if len(ingest) != 0 {
		t.Errorf("temp files after refused writes: %v", ingest)
	}
	// The store is unchanged.
	idx, _ := f.store.Index(t.Context())
	if d, _ := f.store.Resolve(t.Context(), "demo"); d.Digest != f.demo.Manifest.Digest || len(idx.Manifests) != 8 {
		t.Errorf("store changed: %d entries", len(idx.Manifests))
	}
	_ = http.MethodGet
}
