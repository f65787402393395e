package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bot-bottle/bb/oci/layer"
	"github.com/google/go-containerregistry/pkg/authn"
)

// Defaults.
const (
	// DefaultChunkSize is the size of the PATCH requests a large blob goes
	// up in: small enough for proxies that reject bodies over ~100 MB,
	// large enough that per-request overhead stays negligible.
	DefaultChunkSize = 32 << 20
	// MinChunkSize is the smallest chunk accepted. Registries backed by
	// S3 multipart uploads may refuse chunks under 5 MiB; small chunks
	// are for tests.
	MinChunkSize = 4 << 10
	// DefaultConcurrency is how many blobs move at once. A snapshot has
	// one or a few layers; more streams rarely help a single registry.
	DefaultConcurrency = 3
	// DefaultRetries is how often a failed chunk is retried in-process
	// (after asking the registry how much it accepted).
	DefaultRetries = 2
	// DefaultIdleTimeout is how long a pull waits for the next byte of
	// a manifest or blob before it gives up on the registry.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultAuthTimeout bounds each request of the auth handshake (the
	// /v2/ ping, the token endpoint): connect and response header within
	// it, a byte at least every DefaultAuthTimeout, the answer within
	// twice it.
	DefaultAuthTimeout = 30 * time.Second
	// sessionMaxAge is how long a saved upload session is worth trying
	// (distribution purges uploads older than a week by default).
	sessionMaxAge = 7 * 24 * time.Hour
)

// Options tune Push and Pull. The zero value is usable.
type Options struct {
	// Keychain resolves credentials; nil means authn.DefaultKeychain
	// (docker config and credential helpers).
	Keychain authn.Keychain
	// CAFile is a PEM file of extra CA certificates to trust, added to
	// the system's (which SSL_CERT_FILE and SSL_CERT_DIR replace).
	CAFile string
	// PlainHTTP allows plain HTTP to registries that are not on a
	// loopback address (loopback registries may always use it).
	PlainHTTP bool
	// Insecure allows plain HTTP and skips TLS certificate verification.
	Insecure bool
	// ChunkSize is the PATCH size for large blobs (default
	// DefaultChunkSize); blobs up to this size go up in one request.
	ChunkSize int64
	// Concurrency is how many blobs move at once (default
	// DefaultConcurrency).
	Concurrency int
	// Retries is how many times a failed chunk is retried within one
	// push (default DefaultRetries; negative: none).
	Retries int
	// Transport wraps the HTTP transport bb builds (TLS, proxy settings):
	// for tests that count bytes or inject failures.
	Transport func(http.RoundTripper) http.RoundTripper
	// Progress, if set, is called with the number of bytes each time
	// some are sent or received.
	Progress func(delta int64)
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// UserAgent is sent with every request.
	UserAgent string
	// IdleTimeout abandons a pull whose manifest or blob moves no byte
	// for that long (default DefaultIdleTimeout).
	IdleTimeout time.Duration
	// AuthTimeout bounds each request of the auth handshake with the
	// registry and its token endpoint, at the start and whenever a token
	// is refreshed (default DefaultAuthTimeout; see AuthStallError).
	AuthTimeout time.Duration
	// BeforeFetch, if set, is called by Pull once the manifest is read
	// and checked, before any blob is downloaded (Manifest, Slug and
	// Repository are set): an error stops the pull with nothing
	// downloaded, e.g. for a slug that is taken.
	BeforeFetch func(ctx context.Context, res *PullResult) error
	// Compression, if set (layer.Gzip or layer.Zstd), makes Push send the
	// snapshot with its layers in that compression (see convert.go);
	// empty sends them as stored.
	Compression layer.Compression
}

func (o Options) withDefaults() (Options, error) {
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.ChunkSize < MinChunkSize {
		return o, fmt.Errorf("chunk size %d is too small: use at least %d bytes", o.ChunkSize, MinChunkSize)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Retries == 0 {
		o.Retries = DefaultRetries
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(int64) {}
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.AuthTimeout <= 0 {
		o.AuthTimeout = DefaultAuthTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = "bb"
	}
	return o, nil
}

// transport builds the base transport: TLS settings, the plain-HTTP
// guard, and the caller's wrapper.
func (o Options) transport() (http.RoundTripper, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	tr.MaxIdleConnsPerHost = 2 * DefaultConcurrency
	tr.WriteBufferSize = 256 << 10
	tr.ReadBufferSize = 256 << 10
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		b, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading --ca-file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificates", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if o.Insecure {
		cfg.InsecureSkipVerify = true
	}
	tr.TLSClientConfig = cfg
	var rt http.RoundTripper = tr
	if o.Transport != nil {
		rt = o.Transport(rt)
	}
	return &plainGuard{inner: rt, allow: o.Insecure || o.PlainHTTP}, nil
}

// plainGuard refuses plain HTTP to hosts off the loopback interface
// unless allowed, so credentials and content never cross a network in
// clear text by accident.
type plainGuard struct {
	inner http.RoundTripper
	allow bool
}

// errPlainHTTP is returned for a plain-HTTP request that was not allowed.
var errPlainHTTP = errors.New("plain HTTP is only used for loopback registries: pass --plain-http (or --insecure) to allow it")

func (g *plainGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allow && !isLoopback(req.URL.Host) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%s: %w", req.URL.Host, errPlainHTTP)
	}
	return g.inner.RoundTrip(req)
}

// isLoopback reports whether hostport names the loopback interface.
func isLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
