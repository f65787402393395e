package remote

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		h     string
		saved int64
		want  int64
		ok    bool
	}{
		{"0-0", 0, 0, true},
		{"0-0", -1, 1, true},
		{"0-99", 0, 100, true},
		{"bytes=0-99", 50, 100, true},
		{"", 0, 0, false},
		{"5-10", 0, 0, false},
		{"0-x", 0, 0, false},
		{"0--3", 0, 0, false},
	} {
		got, ok := parseRange(tc.h, tc.saved)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRange(%q, %d) = %d, %v; want %d, %v", tc.h, tc.saved, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPlainHTTPOnlyForLoopback(t *testing.T) {
	called := 0
	inner := roundTripFunc(func(*http.Request) (*http.Response, error) {
		called++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	g := &plainGuard{inner: inner}
	for _, u := range []string{"http://127.0.0.1:5000/v2/", "http://localhost:5000/v2/", "http://[::1]:5000/v2/", "https://10.0.0.1/v2/"} {
		req, _ := http.NewRequest("GET", u, nil)
		if _, err := g.RoundTrip(req); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:5000/v2/", "http://registry.example.com/v2/", "http://localhost.example.com/v2/"} {
		req, _ := http.NewRequest("GET", u, nil)
		_, err := g.RoundTrip(req)
		if !errors.Is(err, errPlainHTTP) || !strings.Contains(err.Error(), "--plain-http") {
			t.Errorf("%s: want a refusal naming --plain-http, got %v", u, err)
		}
	}
	if called != 4 {
		t.Fatalf("inner transport called %d times, want 4", called)
	}
	g.allow = true
	req, _ := http.NewRequest("GET", "http://10.0.0.1:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestKnownBlobsBounded(t *testing.T) {
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := openState(s)
	if err != nil {
		t.Fatal(err)
	}
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	for i := 0; i < maxReposPerBlob+3; i++ {
		if err := st.record("r.example", "repo"+string(rune('a'+i)), []v1.Hash{h}); err != nil {
			t.Fatal(err)
		}
	}
	k := st.readKnown()
	if n := len(k.Registries["r.example"][h.String()].Repos); n != maxReposPerBlob {
		t.Fatalf("%d repos kept, want %d", n, maxReposPerBlob)
	}
	if got := st.mountSource("r.example", "other", h); got != "repo"+string(rune('a'+maxReposPerBlob+2)) {
		t.Fatalf("mount source %q, want the most recent repository", got)
	}
	if got := st.mountSource("r.example", "repo"+string(rune('a'+maxReposPerBlob+2)), h); got == "" {
		t.Fatal("no other repository offered")
	}
	if got := st.mountSource("elsewhere", "x", h); got != "" {
		t.Fatalf("mount source on another registry: %q", got)
	}
	// A damaged file is ignored, not fatal.
	if err := os.WriteFile(filepath.Join(st.dir, "blobs.json"), []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := st.mountSource("r.example", "x", h); got != "" {
		t.Fatalf("mount source from a damaged record: %q", got)
	}
	if err := st.record("r.example", "x", []v1.Hash{h}); err != nil {
		t.Fatal(err)
	}
}

func TestSessionValidation(t *testing.T) {
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, _ := openState(s)
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("b", 64)}
	key := sessionKey("r", "repo", h)
	if err := st.saveSession(key, session{Registry: "r", Repository: "repo", Digest: h.String(), Size: 100, Location: "http://r/x", Offset: 40}); err != nil {
		t.Fatal(err)
	}
	if ses, ok := st.loadSession(key, "r", "repo", h, 100); !ok || ses.Offset != 40 {
		t.Fatalf("session not loaded: %+v %v", ses, ok)
	}
	if _, ok := st.loadSession(key, "r", "repo", h, 99); ok {
		t.Fatal("a session for another size was used")
	}
	if _, err := os.Stat(st.sessionPath(key)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("mismatched session not removed")
	}
}

func TestPickImage(t *testing.T) {
	img := func(os, arch string) string {
		c := "b"
		if arch == runtime.GOARCH {
			c = "a"
		}
		return `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:` + strings.Repeat(c, 64) + `","size":1,"platform":{"os":"` + os + `","architecture":"` + arch + `"}}`
	}
	here := img("linux", runtime.GOARCH)
	meta := `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.bot-bottle.metadata.v1+json","digest":"sha256:` + strings.Repeat("f", 64) + `","size":1,"platform":{"os":"unknown","architecture":"unknown"}}`
	for _, tc := range []struct {
		entries []string
		want    string
		ok      bool
	}{
		{[]string{here, meta}, here, true},
		{[]string{meta, img("linux", "s390x"), here}, here, true},
		{[]string{meta}, "", false},
		{[]string{img("linux", "s390x")}, "", false},
	} {
		d, err := pickImage("x", []byte(`{"schemaVersion":2,"manifests":[`+strings.Join(tc.entries, ",")+`]}`))
		if (err == nil) != tc.ok {
			t.Errorf("%v: err %v", tc.entries, err)
			continue
		}
		if tc.ok && !strings.Contains(tc.want, d.Digest.Hex) {
			t.Errorf("%v: picked %s", tc.entries, d.Digest)
		}
	}
}
