package remote_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/remote"
)

// hostileAuth is a registry on 127.0.0.1 whose /v2/ asks for a bearer
// token from its /token endpoint (or from realm, if set), which answers
// as token says.
func hostileAuth(t *testing.T, ping, token func(w http.ResponseWriter, r *http.Request), realm string) string {
	t.Helper()
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			rl := realm
			if rl == "" {
				rl = srv.URL + "/token"
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="hostile"`, rl))
			if ping != nil {
				ping(w, r)
				return
			}
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/token":
			token(w, r)
		default:
			http.Error(w, "no", http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// never holds the request until the client gives up.
func never(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// trickle sends a byte every 20 ms, forever.
func trickle(status int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		for {
			if _, err := w.Write([]byte("{")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// mute takes the connection over and writes nothing, not even a status
// line, until the client closes it.
func mute(w http.ResponseWriter, r *http.Request) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer c.Close()
	_, _ = io.Copy(io.Discard, c)
}

// huge sends bytes as fast as the client takes them, forever.
func huge(status int) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		b := []byte(strings.Repeat(" ", 64<<10))
		for {
			if _, err := w.Write(b); err != nil {
				return
			}
		}
	}
}

// authTimeout is the tests' --auth-timeout. The cases tell the idle
// limit (one timeout) from the total one (two) apart, so a pause of the
// test process as long as the timeout (a loaded machine) would blur
// them: it stays well above such pauses.
const authTimeout = time.Second

// A registry whose auth handshake never ends, at any of its steps, makes
// bb give up within the auth timeout, naming the endpoint and the flag.
func TestAuthHandshakeBounded(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"token":"t"}`) }
	cases := []struct {
		name        string
		ping, token func(http.ResponseWriter, *http.Request)
		realm       string
		want        string
	}{
		{name: "token endpoint never answers", token: never, want: "/token sent no byte"},
		{name: "token endpoint takes the connection and is mute", token: mute, want: "/token sent no byte"},
		{name: "token endpoint trickles", token: trickle(http.StatusOK), want: "/token did not finish its answer"},
		{name: "token endpoint sends a huge body", token: huge(http.StatusOK), want: "/token sent more than 65536 bytes"},
		// The ping's body is only drained: cut off, the handshake goes on.
		{name: "ping never ends its body", ping: trickle(http.StatusUnauthorized), token: ok},
		{name: "ping never answers", ping: never, token: ok, want: "/v2/ sent no byte"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := hostileAuth(t, tc.ping, tc.token, tc.realm)
			s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			_, err = remote.Pull(ctx, s, addr+"/hostile/repo:tag", remote.Options{AuthTimeout: authTimeout, IdleTimeout: 30 * time.Second})
			took := time.Since(start)
			var se *remote.AuthStallError
			if err == nil {
				t.Fatal("a pull from a hostile registry succeeded")
			}
			if tc.want != "" && (!errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "--auth-timeout")) {
				t.Fatalf("pull: %v, want an auth stall naming %q and --auth-timeout", err, tc.want)
			}
			if took > 10*authTimeout {
				t.Errorf("gave up after %s", took)
			}
		})
	}
}

// A token refreshed in the middle of a pull (the registry asks again
// with a 401) is bounded the same way, well before the pull's own idle
// timeout.
func TestAuthRefreshBounded(t *testing.T) {
	var tokens atomic.Int32
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenge := fmt.Sprintf(`Bearer realm=%q,service="hostile",scope="repository:hostile/repo:pull"`, srv.URL+"/token")
		switch {
		case r.URL.Path == "/token":
			if tokens.Add(1) > 1 {
				never(w, r)
				return
			}
			fmt.Fprint(w, `{"token":"first"}`)
		default: // /v2/ and every later request: a 401 that asks for a new token
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	s, err := oci.Open(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err = remote.Pull(ctx, s, strings.TrimPrefix(srv.URL, "http://")+"/hostile/repo:tag", remote.Options{AuthTimeout: authTimeout, IdleTimeout: 30 * time.Second})
	var se *remote.AuthStallError
	if !errors.As(err, &se) || tokens.Load() < 2 {
		t.Fatalf("pull: %v after %d token requests, want an auth stall of the refresh", err, tokens.Load())
	}
	if took := time.Since(start); took > 10*authTimeout {
		t.Errorf("gave up after %s", took)
	}
}
