package remote_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/remote"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// liar is a registry on 127.0.0.1 that serves what a test tells it to,
// lies included. Blob requests are counted, so a test can tell that a
// refusal came before any download.
type liar struct {
	srv *httptest.Server
	mu  sync.Mutex
	// manifests by tag or digest: body and Content-Type.
	manifests map[string]liarManifest
	blobs     map[string][]byte
	// blob, if set, serves a blob request in place of the honest answer.
	blob      func(w http.ResponseWriter, r *http.Request, digest string, honest []byte)
	blobReqs  atomic.Int64
	manifestN atomic.Int64
	// stallReferrers makes the referrers API hang.
	stallReferrers bool
}

type liarManifest struct {
	body []byte
	mt   types.MediaType
}

func newLiar(t *testing.T) *liar {
	l := &liar{manifests: map[string]liarManifest{}, blobs: map[string][]byte{}}
	l.srv = httptest.NewServer(http.HandlerFunc(l.serve))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *liar) addr() string { return strings.TrimPrefix(l.srv.URL, "http://") }

func (l *liar) ref(tag string) string { return l.addr() + "/lies:" + tag }

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// putBlob stores b and returns its descriptor.
func (l *liar) putBlob(mt types.MediaType, b []byte) v1.Descriptor {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := v1.Descriptor{MediaType: mt, Digest: sha(b), Size: int64(len(b))}
	l.blobs[d.Digest.String()] = b
	return d
}

// putManifest serves body as tag and by its digest.
func (l *liar) putManifest(tag string, mt types.MediaType, body []byte) v1.Descriptor {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := v1.Descriptor{MediaType: mt, Digest: sha(body), Size: int64(len(body))}
	l.manifests[tag] = liarManifest{body, mt}
	l.manifests[d.Digest.String()] = liarManifest{body, mt}
	return d
}

func (l *liar) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v2/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/v2/lies/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	kind, id, _ := strings.Cut(rest, "/")
	switch kind {
	case "referrers":
		if l.stallReferrers {
			<-r.Context().Done()
			return
		}
		http.NotFound(w, r)
	case "manifests":
		l.manifestN.Add(1)
		l.mu.Lock()
		m, ok := l.manifests[id]
		l.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", string(m.mt))
		w.Header().Set("Docker-Content-Digest", sha(m.body).String())
		if !strings.HasPrefix(id, "chunked-") {
			w.Header().Set("Content-Length", strconv.Itoa(len(m.body)))
		}
		w.Write(m.body)
	case "blobs":
		l.blobReqs.Add(1)
		l.mu.Lock()
		b, ok := l.blobs[id]
		lie := l.blob
		l.mu.Unlock()
		if lie != nil {
			lie(w, r, id, b)
			return
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

// tarOf is a one-file layer.
func tarOf(content string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "f", Mode: 0o644, Size: int64(len(content))})
	tw.Write([]byte(content))
	tw.Close()
	return b.Bytes()
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

// image serves an image of gzip layers (contents) under tag; diffIDs
// overrides the config's diff_ids when set.
func (l *liar) image(tag string, contents []string, diffIDs []v1.Hash) (v1.Descriptor, []v1.Descriptor) {
	var layers []v1.Descriptor
	var diffs []v1.Hash
	for _, c := range contents {
		t := tarOf(c)
		layers = append(layers, l.putBlob(types.OCILayer, gz(t)))
		diffs = append(diffs, sha(t))
	}
	if diffIDs != nil {
		diffs = diffIDs
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers", DiffIDs: diffs}})
	cd := l.putBlob(types.OCIConfigJSON, cfg)
	man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: layers,
		Annotations: map[string]string{oci.SlugAnnotation: "verify-lies"}})
	return l.putManifest(tag, types.OCIManifestSchema1, man), append([]v1.Descriptor{cd}, layers...)
}

// storeFiles lists the store's blobs and temporary files.
func storeFiles(t *testing.T, s *oci.Store) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{"blobs/sha256", "ingest"} {
		ents, _ := os.ReadDir(filepath.Join(s.Root(), dir))
		for _, e := range ents {
			out = append(out, dir+"/"+e.Name())
		}
	}
	return out
}

// seeded is a store that already holds a tagged snapshot, so a refusal
// must keep its blobs and remove only the pull's own.
func seeded(t *testing.T) *oci.Store {
	t.Helper()
	s := makeSnapshot(t, "verify-seed", 4<<10, 77)
	return s.store
}

func TestPullRefusesLyingRegistry(t *testing.T) {
	t.Parallel()
	// The stall cases wait this long; the honest transfers of the others
	// must not pause as long, even on a loaded machine.
	opts := remote.Options{Keychain: anonymous, IdleTimeout: 2 * time.Second}
	type tc struct {
		name string
		// setup makes l lie and returns the reference to pull.
		setup func(l *liar) string
		want  string
		// noBlobs: the refusal must come before any blob request.
		noBlobs bool
	}
	cases := []tc{
		{name: "blob with other content", want: "digest", setup: func(l *liar) string {
			_, bs := l.image("t", []string{"one", "two"}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				if id == bs[2].Digest.String() {
					honest = bytes.Clone(honest)
					honest[len(honest)/2] ^= 1
				}
				w.Write(honest)
			}
			return l.ref("t")
		}},
		{name: "blob of another size", want: "the manifest says", setup: func(l *liar) string {
			_, bs := l.image("t", []string{"one"}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				if id == bs[1].Digest.String() {
					honest = append(bytes.Clone(honest), 0)
				}
				w.Write(honest)
			}
			return l.ref("t")
		}},
		{name: "layer not matching its diff_id", want: "does not match its config", setup: func(l *liar) string {
			l.image("t", []string{"one", "two", "three"}, []v1.Hash{sha(tarOf("one")), sha(tarOf("two")), sha(tarOf("not three"))})
			return l.ref("t")
		}},
		{name: "endless blob", want: "longer than", setup: func(l *liar) string {
			l.image("t", []string{"one"}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				w.Write(honest)
				chunk := make([]byte, 32<<10)
				for r.Context().Err() == nil {
					if _, err := w.Write(chunk); err != nil {
						return
					}
				}
			}
			return l.ref("t")
		}},
		{name: "blob stalls midway", want: "stalled", setup: func(l *liar) string {
			l.image("t", []string{strings.Repeat("stall ", 10000)}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				w.Header().Set("Content-Length", strconv.Itoa(len(honest)))
				w.Write(honest[:len(honest)/2])
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			}
			return l.ref("t")
		}},
		{name: "blob stalls before its headers", want: "stalled", setup: func(l *liar) string {
			l.image("t", []string{"one"}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) { <-r.Context().Done() }
			return l.ref("t")
		}},
		{name: "Content-Length longer than the body", want: "unexpected EOF", setup: func(l *liar) string {
			l.image("t", []string{strings.Repeat("short ", 1000)}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				w.Header().Set("Content-Length", strconv.Itoa(len(honest)))
				w.Write(honest[:len(honest)-10])
			}
			return l.ref("t")
		}},
		{name: "redirect loop", want: "redirects", setup: func(l *liar) string {
			l.image("t", []string{"one"}, nil)
			l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
				http.Redirect(w, r, r.URL.Path, http.StatusTemporaryRedirect)
			}
			return l.ref("t")
		}},
		{name: "huge manifest", noBlobs: true, want: "more than bb accepts", setup: func(l *liar) string {
			_, bs := l.image("x", []string{"one"}, nil)
			man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "config": bs[0], "layers": bs[1:],
				"annotations": map[string]string{"pad": strings.Repeat("x", oci.MaxManifestSize)}})
			l.putManifest("t", types.OCIManifestSchema1, man)
			return l.ref("t")
		}},
		{name: "huge manifest without Content-Length", noBlobs: true, want: "larger than bb accepts", setup: func(l *liar) string {
			_, bs := l.image("x", []string{"one"}, nil)
			man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "config": bs[0], "layers": bs[1:],
				"annotations": map[string]string{"pad": strings.Repeat("x", oci.MaxManifestSize)}})
			l.putManifest("chunked-t", types.OCIManifestSchema1, man)
			return l.ref("chunked-t")
		}},
		{name: "too many layers", noBlobs: true, want: "MaxLayers", setup: func(l *liar) string {
			_, bs := l.image("x", []string{"one"}, nil)
			layers := make([]v1.Descriptor, remote.MaxLayers+1)
			for i := range layers {
				layers[i] = bs[1]
			}
			man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: bs[0], Layers: layers})
			l.putManifest("t", types.OCIManifestSchema1, man)
			return l.ref("t")
		}},
		{name: "index that nests", noBlobs: true, want: "nested", setup: func(l *liar) string {
			img, _ := l.image("x", []string{"one"}, nil)
			linux := &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
			var d v1.Descriptor = img
			for i := range 3 {
				d.Platform = linux
				body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{d}})
				d = l.putManifest(fmt.Sprint("i", i), types.OCIImageIndex, body)
				d.MediaType = types.OCIManifestSchema1 // the outer index lies about what it names
			}
			return l.ref("i2")
		}},
		{name: "index without a linux image", noBlobs: true, want: "without a linux image", setup: func(l *liar) string {
			img, _ := l.image("x", []string{"one"}, nil)
			img.Platform = &v1.Platform{OS: "windows", Architecture: "amd64"}
			body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{img}})
			l.putManifest("t", types.OCIImageIndex, body)
			return l.ref("t")
		}},
		{name: "huge index", noBlobs: true, want: "MaxIndexEntries", setup: func(l *liar) string {
			img, _ := l.image("x", []string{"one"}, nil)
			img.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
			ds := make([]v1.Descriptor, remote.MaxIndexEntries+1)
			for i := range ds {
				ds[i] = img
			}
			body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: ds})
			l.putManifest("t", types.OCIImageIndex, body)
			return l.ref("t")
		}},
		{name: "artifact", noBlobs: true, want: "is an artifact", setup: func(l *liar) string {
			cd := l.putBlob("application/vnd.oci.empty.v1+json", []byte("{}"))
			ld := l.putBlob("application/vnd.example.sbom+json", []byte(`{"sbom":true}`))
			man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "artifactType": "application/vnd.example.sbom",
				"config": cd, "layers": []v1.Descriptor{ld}})
			l.putManifest("t", types.OCIManifestSchema1, man)
			return l.ref("t")
		}},
		{name: "artifact without artifactType", noBlobs: true, want: "is an artifact", setup: func(l *liar) string {
			cd := l.putBlob("application/vnd.example.config+json", []byte("{}"))
			man, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": types.OCIManifestSchema1, "config": cd, "layers": []v1.Descriptor{}})
			l.putManifest("t", types.OCIManifestSchema1, man)
			return l.ref("t")
		}},
		{name: "unknown layer media type", noBlobs: true, want: "not a layer bb can restore", setup: func(l *liar) string {
			_, bs := l.image("x", []string{"one"}, nil)
			bs[1].MediaType = "application/x-unknown"
			man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: bs[0], Layers: bs[1:]})
			l.putManifest("t", types.OCIManifestSchema1, man)
			return l.ref("t")
		}},
		{name: "unknown manifest media type", noBlobs: true, want: "not an image manifest", setup: func(l *liar) string {
			l.putManifest("t", "application/vnd.example.thing", []byte(`{"schemaVersion":2}`))
			return l.ref("t")
		}},
		{name: "manifest digest lie", noBlobs: true, want: "refusing it", setup: func(l *liar) string {
			img, _ := l.image("x", []string{"one"}, nil)
			other := sha([]byte("other"))
			l.manifests[other.String()] = l.manifests[img.Digest.String()]
			return l.addr() + "/lies@" + other.String()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			l := newLiar(t)
			ref := c.setup(l)
			s := seeded(t)
			before := storeFiles(t, s)
			idx, _ := os.ReadFile(filepath.Join(s.Root(), "index.json"))
			start := time.Now()
			_, err := remote.Pull(context.Background(), s, ref, opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
			t.Logf("%s (%s)", err, time.Since(start).Round(time.Millisecond))
			if c.noBlobs && l.blobReqs.Load() > 0 {
				t.Errorf("%d blob requests before the refusal", l.blobReqs.Load())
			}
			if after := storeFiles(t, s); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("store files changed:\nbefore %v\nafter  %v", before, after)
			}
			if idx2, _ := os.ReadFile(filepath.Join(s.Root(), "index.json")); !bytes.Equal(idx, idx2) {
				t.Errorf("store index.json changed")
			}
			if c.want == "stalled" && !strings.Contains(err.Error(), l.addr()+"/lies") {
				t.Errorf("the stall error does not name the registry: %v", err)
			}
		})
	}
}

// TestPullHonestLiar pulls from the same server when it tells the truth:
// an image with gzip layers, and one behind an index.
func TestPullHonestLiar(t *testing.T) {
	t.Parallel()
	l := newLiar(t)
	opts := remote.Options{Keychain: anonymous}
	img, _ := l.image("t", []string{"one", "two"}, nil)
	s := newStore(t)
	res, err := remote.Pull(context.Background(), s, l.ref("t"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != img.Digest || len(res.NewBlobs) != 4 {
		t.Fatalf("pulled %+v, new blobs %v", res.Manifest, res.NewBlobs)
	}
	// Again: every layer is present, and checked from the store.
	if _, err := remote.Pull(context.Background(), s, l.ref("t"), opts); err != nil {
		t.Fatal(err)
	}
	other := img
	other.Platform = &v1.Platform{OS: "windows", Architecture: "amd64"}
	mine := img
	mine.Platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	body, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{other, mine}})
	l.putManifest("multi", types.OCIImageIndex, body)
	res, err = remote.Pull(context.Background(), newStore(t), l.ref("multi"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Digest != img.Digest {
		t.Fatalf("index resolved to %s, want %s", res.Manifest.Digest, img.Digest)
	}
}

// TestPullBeforeFetch: a refusal by BeforeFetch (a taken slug) comes
// before any blob is downloaded.
func TestPullBeforeFetch(t *testing.T) {
	t.Parallel()
	l := newLiar(t)
	l.image("t", []string{"one"}, nil)
	errTaken := errors.New("slug taken")
	var seen string
	_, err := remote.Pull(context.Background(), newStore(t), l.ref("t"), remote.Options{Keychain: anonymous,
		BeforeFetch: func(ctx context.Context, res *remote.PullResult) error {
			seen = res.Slug
			return errTaken
		}})
	if !errors.Is(err, errTaken) || seen != "verify-lies" {
		t.Fatalf("got %v (slug %q)", err, seen)
	}
	if n := l.blobReqs.Load(); n != 0 {
		t.Fatalf("%d blob requests", n)
	}
}

// TestPullPresentLayerChecked: a layer already in the store is still
// checked against the config that claims it.
func TestPullPresentLayerChecked(t *testing.T) {
	t.Parallel()
	l := newLiar(t)
	s := newStore(t)
	_, bs := l.image("good", []string{"one"}, nil)
	if _, err := remote.Pull(context.Background(), s, l.ref("good"), remote.Options{Keychain: anonymous}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{sha([]byte("a lie"))}}})
	cd := l.putBlob(types.OCIConfigJSON, cfg)
	man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd, Layers: bs[1:]})
	l.putManifest("bad", types.OCIManifestSchema1, man)
	before := storeFiles(t, s)
	if _, err := remote.Pull(context.Background(), s, l.ref("bad"), remote.Options{Keychain: anonymous}); err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("a present layer with a false diff_id: %v", err)
	}
	if after := storeFiles(t, s); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Errorf("store files changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestPullRollsBack: a pull that fails late (on its third layer, or on
// the metadata referrer after every blob arrived) removes the blobs it
// had already stored, and keeps those the store had before.
func TestPullRollsBack(t *testing.T) {
	t.Parallel()
	for _, late := range []string{"third layer", "referrers stall"} {
		t.Run(late, func(t *testing.T) {
			t.Parallel()
			l := newLiar(t)
			_, bs := l.image("t", []string{"one", "two", "three"}, nil)
			want := "stalled"
			if late == "third layer" {
				want = "digest mismatch"
				l.blob = func(w http.ResponseWriter, r *http.Request, id string, honest []byte) {
					if id == bs[3].Digest.String() {
						honest = bytes.Clone(honest)
						honest[len(honest)-1] ^= 1
					}
					w.Write(honest)
				}
			} else {
				want = "no answer from"
				l.stallReferrers = true
			}
			s := seeded(t)
			before := storeFiles(t, s)
			_, err := remote.Pull(context.Background(), s, l.ref("t"), remote.Options{Keychain: anonymous, Concurrency: 1, IdleTimeout: time.Second})
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error saying %q", err, want)
			}
			t.Log(err)
			if n := l.blobReqs.Load(); n < 3 {
				t.Fatalf("only %d blob requests: the failure came too early to test rollback", n)
			}
			if after := storeFiles(t, s); strings.Join(after, " ") != strings.Join(before, " ") {
				t.Errorf("store files changed:\nbefore %v\nafter  %v", before, after)
			}
		})
	}
}
