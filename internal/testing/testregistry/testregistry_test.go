package testregistry

import (
	"net/http"
	"strings"
	"testing"
)

func status(t *testing.T, c *http.Client, method, url string, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestPlainRestartKeepsUploads(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{})
	c := r.Client()
	if got := status(t, c, "GET", r.URL+"/v2/", "").StatusCode; got != 200 {
		t.Fatalf("GET /v2/: %d", got)
	}
	resp := status(t, c, "POST", r.URL+"/v2/a/blobs/uploads/", "")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	resp = status(t, c, "PATCH", loc, "hello")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %d", resp.StatusCode)
	}
	loc = resp.Header.Get("Location")
	r.Kill()
	r.Restart()
	resp = status(t, c, "GET", loc, "")
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Range") != "0-4" {
		t.Fatalf("upload status after restart: %d Range %q\n%s", resp.StatusCode, resp.Header.Get("Range"), r.Log())
	}
	// sha256("hello")
	const d = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
	resp = status(t, c, "PUT", resp.Header.Get("Location")+"&digest="+d, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if !r.Has(d) {
		t.Fatal("blob not in storage")
	}
}

func TestAuthTLS(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{Auth: true})
	if !strings.HasPrefix(r.URL, "https://") || r.CAFile == "" {
		t.Fatalf("want TLS, got %s (CA %q)", r.URL, r.CAFile)
	}
	if got := status(t, r.Client(), "GET", r.URL+"/v2/", "").StatusCode; got != 200 {
		t.Fatalf("GET /v2/ with credentials: %d", got)
	}
	anon := r.Client()
	anon.Transport = anon.Transport.(basicAuth).inner
	if got := status(t, anon, "GET", r.URL+"/v2/", "").StatusCode; got != http.StatusUnauthorized {
		t.Fatalf("GET /v2/ without credentials: %d", got)
	}
	dir := t.TempDir()
	if p := r.DockerConfig(dir, ""); !strings.HasSuffix(p, "config.json") {
		t.Fatal(p)
	}
}
