package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// maxAuthBody bounds what bb reads of one answer of the auth handshake
// (the /v2/ ping, a token): a token is a few KiB; go-containerregistry
// allows 64 KiB too.
const maxAuthBody = 64 << 10

// AuthStallError is a request of the auth handshake (the /v2/ ping, the
// token endpoint's answer) that a registry left without an answer, or
// answered too slowly or at too great a length.
type AuthStallError struct {
	// Endpoint is the URL asked, without its query.
	Endpoint string
	Timeout  time.Duration
	// Reason says what went wrong ("sent no byte", ...).
	Reason string
}

func (e *AuthStallError) Error() string {
	return fmt.Sprintf("auth endpoint %s %s: the registry stalled its auth handshake; try again, or raise --auth-timeout (now %s)", e.Endpoint, e.Reason, e.Timeout)
}

// authGuard bounds the requests of the auth handshake, which
// go-containerregistry's transport makes without a timeout: each one
// must connect and give its response header within timeout, move a byte
// at least every timeout, end within twice timeout and stay under
// maxAuthBody. Every request of the handshake of dial is guarded, and so
// are the later requests to the endpoints met there (a token refreshed
// in the middle of a transfer); the registry's other requests are not.
type authGuard struct {
	inner   http.RoundTripper
	timeout time.Duration

	mu        sync.Mutex
	handshake bool
	endpoints map[string]bool
}

func newAuthGuard(inner http.RoundTripper, timeout time.Duration) *authGuard {
	return &authGuard{inner: inner, timeout: timeout, handshake: true, endpoints: map[string]bool{}}
}

// done ends the handshake: from now on only requests to its endpoints
// are guarded.
func (g *authGuard) done() {
	g.mu.Lock()
	g.handshake = false
	g.mu.Unlock()
}

// endpoint is u without its query, fragment and user info.
func endpoint(u *url.URL) string {
	v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return v.String()
}

func (g *authGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	ep := endpoint(req.URL)
	g.mu.Lock()
	guard := g.handshake || g.endpoints[ep]
	if g.handshake {
		g.endpoints[ep] = true
	}
	g.mu.Unlock()
	if !guard {
		return g.inner.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stall := func(reason string) func() {
		return func() { cancel(&AuthStallError{Endpoint: ep, Timeout: g.timeout, Reason: reason}) }
	}
	idle := time.AfterFunc(g.timeout, stall(fmt.Sprintf("sent no byte for %s", g.timeout)))
	total := time.AfterFunc(2*g.timeout, stall(fmt.Sprintf("did not finish its answer within %s", 2*g.timeout)))
	stop := func() {
		idle.Stop()
		total.Stop()
		cancel(nil)
	}
	resp, err := g.inner.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		return nil, cause(ctx, err)
	}
	idle.Reset(g.timeout)
	resp.Body = &guardedBody{rc: resp.Body, ctx: ctx, idle: idle, timeout: g.timeout, stop: stop, ep: ep}
	return resp, nil
}

// cause is the guard's error in place of the cancellation it caused.
func cause(ctx context.Context, err error) error {
	var se *AuthStallError
	if c := context.Cause(ctx); errors.As(c, &se) {
		return se
	}
	return err
}

// guardedBody is an answer of the handshake: every byte resets the idle
// timer, and more than maxAuthBody bytes fail.
type guardedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	idle    *time.Timer
	timeout time.Duration
	stop    func()
	ep      string
	n       int64
	once    sync.Once
}

func (b *guardedBody) Read(p []byte) (int, error) {
	if left := maxAuthBody + 1 - b.n; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.n > maxAuthBody {
		return 0, &AuthStallError{Endpoint: b.ep, Timeout: b.timeout, Reason: fmt.Sprintf("sent more than %d bytes", maxAuthBody)}
	}
	if n > 0 {
		b.idle.Reset(b.timeout)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		err = cause(b.ctx, err)
	}
	return n, err
}

func (b *guardedBody) Close() error {
	err := b.rc.Close()
	b.once.Do(b.stop)
	return err
}
