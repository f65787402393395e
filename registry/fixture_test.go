package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// tarSource is a snapshot.Source over a generated root filesystem.
type tarSource map[string][]byte

func (s tarSource) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, b := range s {
		if dir := filepath.Dir(name); dir != "." {
			_ = tw.WriteHeader(&tar.Header{Name: "./" + dir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		_ = tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b))})
		_, _ = tw.Write(b)
	}
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

// randomBytes returns n bytes from a seeded generator (incompressible, so
// layers have about that size).
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// commit makes a snapshot of slug at time now, with metadata attached.
func commit(t testing.TB, s *oci.Store, slug string, now time.Time, size int) *snapshot.Result {
	t.Helper()
	ctx := context.Background()
	src := tarSource{
		"etc/slug":         []byte(slug + "\n"),
		"home/node/random": randomBytes(uint64(now.UnixNano()), size),
	}
	res, err := snaptest.Commit(ctx, s, snapshot.Request{
		Slug: slug, Backend: "dir", SourceName: "test:" + slug, Source: src, Now: now,
	}, -1)
	if err != nil {
		t.Fatalf("commit %s: %v", slug, err)
	}
	md, _ := json.Marshal(map[string]any{"identity": slug, "backend": "dir", "cwd": "/work"})
	if _, err := snapshot.PutMetadata(ctx, s, slug, res.Manifest, md); err != nil {
		t.Fatalf("metadata of %s: %v", slug, err)
	}
	return res
}

// fixture is a store with two slugs: demo (two snapshots) and other (one).
type fixture struct {
	store   *oci.Store
	demo    *snapshot.Result // current snapshot of demo
	demoOld *snapshot.Result
	other   *snapshot.Result
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	f := &fixture{store: s}
	f.demoOld = commit(t, s, "demo", t0, 200<<10)
	f.demo = commit(t, s, "demo", t0.Add(time.Hour), 3<<20)
	f.other = commit(t, s, "other", t0.Add(2*time.Hour), 64<<10)
	return f
}

// start serves s for the duration of the test.
func start(t testing.TB, s *oci.Store, opts registry.Options) *registry.Server {
	t.Helper()
	srv, err := registry.Start(context.Background(), s, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("closing server: %v", err)
		}
	})
	return srv
}

// response is a fully read HTTP response.
type response struct {
	*http.Response
	body []byte
}

// do sends one request; header is pairs of name, value.
func do(t testing.TB, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Content-Length") {
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return response{resp, b}
}

// expect checks the status and, for errors, the spec error code.
func (r response) expect(t testing.TB, status int, code string) response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
	if r.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" {
		t.Errorf("%s %s: no Docker-Distribution-API-Version header", r.Request.Method, r.Request.URL)
	}
	if code != "" {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s %s: error Content-Type %q", r.Request.Method, r.Request.URL, ct)
		}
		if r.Request.Method == http.MethodHead {
			return r
		}
		var eb struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(r.body, &eb); err != nil || len(eb.Errors) == 0 {
			t.Fatalf("%s %s: error body %q is not the spec's JSON: %v", r.Request.Method, r.Request.URL, r.body, err)
		}
		if eb.Errors[0].Code != code || eb.Errors[0].Message == "" {
			t.Fatalf("%s %s: error %+v, want code %s", r.Request.Method, r.Request.URL, eb.Errors[0], code)
		}
	}
	return r
}

// digestOf returns the sha256 digest of b.
func digestOf(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}

// needTool finds an external client, failing under CI and skipping
// otherwise when it is missing.
func needTool(t *testing.T, name string, extra ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range extra {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}
