package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A registry's error message reaches the terminal as text: its escape
// sequences are escaped.
func TestErrorEscapesControlCharacters(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"\u001b]0;owned\u0007\u001b[2Jgone"}]}`))
	}))
	defer srv.Close()
	var stderr bytes.Buffer
	host := strings.TrimPrefix(srv.URL, "http://")
	code := run(context.Background(), []string{"--home", t.TempDir(), "pull", host + "/redteam/x:latest"}, &stderr)
	if code == 0 {
		t.Fatal("pull of a missing manifest succeeded")
	}
	if strings.ContainsAny(stderr.String(), "\x1b\x07") {
		t.Fatalf("error printed with control characters: %q", stderr.String())
	}
	if !strings.Contains(stderr.String(), `\x1b]0;owned`) {
		t.Fatalf("error does not show the message: %q", stderr.String())
	}
}
