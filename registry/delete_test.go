package registry_test

import (
	"bytes"
	"crypto/sha512"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// pushRandom pushes a random one-layer image as ref and returns it.
func pushRandom(t *testing.T, srv *registry.Server, repo, tag string) v1.Image {
	t.Helper()
	img, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(srv.Ref(repo, tag))
	if err := remote.Write(ref, img); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return img
}

func TestDelete(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	push := start(t, f.store, registry.Options{AllowPush: true})
	do(t, "DELETE", push.URL()+"/v2/demo/manifests/latest", nil).expect(t, 405, "UNSUPPORTED")

	srv := start(t, f.store, registry.Options{AllowPush: true, AllowDelete: true})
	base := srv.URL() + "/v2/"

	// What a snapshot uses stays, and the refusal names who uses it.
	r := do(t, "DELETE", base+"demo/blobs/"+f.demo.Layer.Digest.String(), nil).expect(t, 409, "DENIED")
	if !strings.Contains(string(r.body), "demo") {
		t.Errorf("refusal does not name the snapshot: %s", r.body)
	}
	do(t, "HEAD", base+"demo/blobs/"+f.demo.Layer.Digest.String(), nil).expect(t, 200, "")
	do(t, "DELETE", base+"demo/blobs/"+digestOf([]byte("never pushed")).String(), nil).expect(t, 404, "BLOB_UNKNOWN")
	do(t, "DELETE", base+"demo/manifests/nope", nil).expect(t, 404, "MANIFEST_UNKNOWN")
	do(t, "DELETE", base+"demo/manifests/"+f.demo.Layer.Digest.String(), nil).expect(t, 404, "MANIFEST_UNKNOWN")

	// A nested repository: a tag, then the manifest by digest, then its
	// blobs, each gone at once.
	img := pushRandom(t, srv, "team/app", "latest")
	d, _ := img.Digest()
	ref, _ := name.ParseReference(srv.Ref("team/app", "v1"))
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	if e, _ := snapshot.List(ctx, f.store, "team___app"); len(e) != 2 {
		t.Errorf("history of team___app after a push of latest and v1: %+v", e)
	}
	do(t, "DELETE", base+"team/app/manifests/v1", nil).expect(t, 202, "")
	do(t, "HEAD", base+"team/app/manifests/v1", nil).expect(t, 404, "")
	do(t, "HEAD", base+"team/app/manifests/latest", nil).expect(t, 200, "")
	// Also tagged in another repository: only this repository's tags go.
	twin, _ := name.ParseReference(srv.Ref("twin", "v2"))
	if err := remote.Write(twin, img); err != nil {
		t.Fatal(err)
	}
	do(t, "DELETE", base+"team/app/manifests/"+d.String(), nil).expect(t, 202, "")
	do(t, "HEAD", base+"team/app/manifests/latest", nil).expect(t, 404, "")
	do(t, "HEAD", base+"twin/manifests/v2", nil).expect(t, 200, "")
	if e, _ := snapshot.List(ctx, f.store, "team___app"); len(e) != 0 {
		t.Errorf("history of team___app after deleting its manifest: %+v", e)
	}
	do(t, "DELETE", base+"twin/manifests/"+d.String(), nil).expect(t, 202, "")
	do(t, "HEAD", base+"twin/manifests/"+d.String(), nil).expect(t, 404, "")
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	do(t, "DELETE", base+"twin/blobs/"+ld.String(), nil).expect(t, 202, "")
	do(t, "HEAD", base+"twin/blobs/"+ld.String(), nil).expect(t, 404, "")

	// A child of a tagged index stays while the index does.
	idx, err := random.Index(512, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	iref, _ := name.ParseReference(srv.Ref("multi", "latest"))
	if err := remote.WriteIndex(iref, idx); err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	child := im.Manifests[0].Digest.String()
	r = do(t, "DELETE", base+"multi/manifests/"+child, nil).expect(t, 409, "DENIED")
	if !strings.Contains(string(r.body), "multi") {
		t.Errorf("refusal does not name the index: %s", r.body)
	}
	// Untagging latest leaves the history tag of the push, which still
	// holds the index; deleting the index by digest removes both.
	do(t, "DELETE", base+"multi/manifests/latest", nil).expect(t, 202, "")
	do(t, "DELETE", base+"multi/manifests/"+child, nil).expect(t, 409, "DENIED")
	id, _ := idx.Digest()
	do(t, "DELETE", base+"multi/manifests/"+id.String(), nil).expect(t, 202, "")
	do(t, "DELETE", base+"multi/manifests/"+child, nil).expect(t, 202, "")

	// Deleting a bb snapshot by digest takes its metadata artifact along;
	// the other snapshots keep theirs.
	do(t, "DELETE", base+"other/manifests/"+f.other.Manifest.Digest.String(), nil).expect(t, 202, "")
	if _, err := snapshot.GetMetadata(ctx, f.store, f.other.Manifest.Digest); err == nil {
		t.Error("metadata of a deleted snapshot stays in the index")
	}
	if _, err := snapshot.GetMetadata(ctx, f.store, f.demo.Manifest.Digest); err != nil {
		t.Errorf("metadata of demo: %v", err)
	}

	// The slugs the test did not touch are as they were.
	if got, _ := f.store.Resolve(ctx, "demo"); got.Digest != f.demo.Manifest.Digest {
		t.Error("demo changed")
	}
	noTempFiles(t, f.store)
}

func TestSHA512(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true, AllowDelete: true})
	base := srv.URL() + "/v2/nested/sha/blobs/uploads/"
	blob := randomBytes(7, 5000)
	sum := sha512.Sum512(blob)
	d := "sha512:" + hex.EncodeToString(sum[:])
	// Chunked upload, verified against a sha512 digest at the end.
	u := abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "PATCH", u, bytes.NewReader(blob[:1000]), "Content-Range", "0-999").expect(t, 202, "")
	do(t, "PATCH", u, bytes.NewReader(blob[1000:]), "Content-Range", "1000-4999").expect(t, 202, "")
	r := do(t, "PUT", u+"?digest="+d, nil).expect(t, 201, "")
	if r.Header.Get("Docker-Content-Digest") != d {
		t.Errorf("digest header %q", r.Header.Get("Docker-Content-Digest"))
	}
	h, _ := v1.NewHash(d)
	if n, err := f.store.Stat(t.Context(), h); err != nil || n != 5000 || !strings.Contains(f.store.BlobPath(h), "/blobs/sha512/") {
		t.Errorf("stored: %d %v at %s", n, err, f.store.BlobPath(h))
	}
	got := do(t, "GET", srv.URL()+"/v2/nested/sha/blobs/"+d, nil, "Range", "bytes=4990-").expect(t, 206, "")
	if !bytes.Equal(got.body, blob[4990:]) {
		t.Error("range of a sha512 blob")
	}
	// Monolithic, and a mount under another name.
	do(t, "POST", base+"?digest="+d, bytes.NewReader(blob)).expect(t, 201, "")
	do(t, "POST", srv.URL()+"/v2/other/blobs/uploads/?mount="+d+"&from=nested/sha", nil).expect(t, 201, "")
	// A wrong sha512 digest ends the upload, leaving nothing.
	u = abs(t, srv, do(t, "POST", base, nil).expect(t, 202, "").Header.Get("Location"))
	do(t, "PATCH", u, bytes.NewReader(blob[1:])).expect(t, 202, "")
	do(t, "PUT", u+"?digest="+d, nil).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", u, nil).expect(t, 404, "BLOB_UPLOAD_UNKNOWN")
	// Other algorithms are refused.
	do(t, "POST", base+"?digest=sha384:"+strings.Repeat("a", 96), bytes.NewReader(blob)).expect(t, 400, "DIGEST_INVALID")
	do(t, "GET", srv.URL()+"/v2/other/blobs/blake3:"+strings.Repeat("a", 64), nil).expect(t, 400, "DIGEST_INVALID")
	// bb gc walks blobs/sha512/ too: unreferenced, the blob goes with
	// DELETE, and a GC after it finds nothing left to do there.
	do(t, "DELETE", srv.URL()+"/v2/other/blobs/"+d, nil).expect(t, 202, "")
	if _, err := f.store.GC(t.Context()); err != nil {
		t.Fatal(err)
	}
	noTempFiles(t, f.store)
}

func TestRangeClamp(t *testing.T) {
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	u := srv.URL() + "/v2/demo/blobs/" + f.demo.Layer.Digest.String()
	whole := do(t, "GET", u, nil).expect(t, 200, "").body
	for _, c := range []struct {
		rng    string
		status int
		from   int
	}{
		{"bytes=0-18446744073709551615", 206, 0},
		{"bytes=10-99999999999999999999999", 206, 10},
		{"bytes=-18446744073709551615", 206, 0},
		{"bytes=0-" + strconv.Itoa(len(whole)+100), 206, 0},
		{"bytes=18446744073709551615-", 416, 0},
		{"bytes=" + strconv.Itoa(len(whole)) + "-", 416, 0},
	} {
		r := do(t, "GET", u, nil, "Range", c.rng)
		if r.StatusCode != c.status {
			t.Errorf("Range %s: status %d, want %d (%s)", c.rng, r.StatusCode, c.status, r.body)
			continue
		}
		if c.status == 206 && !bytes.Equal(r.body, whole[c.from:]) {
			t.Errorf("Range %s: %d bytes, want %d", c.rng, len(r.body), len(whole)-c.from)
		}
	}
}
