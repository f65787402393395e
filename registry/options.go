package registry

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Options configure a registry. The zero value serves the store read-only
// on 127.0.0.1 at a free port.
type Options struct {
	// Addr is the listen address (Start only); default "127.0.0.1:0".
	Addr string
	// AllowPush accepts blob uploads and manifest pushes into the store.
	// Without it the registry is read-only and answers writes with 405.
	AllowPush bool
	// AllowDelete accepts DELETE of manifests (by digest), tags and blobs:
	// a tag is untagged in the store, a manifest loses the repository's
	// tags and, when nothing else uses it, its blob; a blob goes at once
	// unless a manifest in the store still references it (409). Without
	// it, deletes get 405.
	AllowDelete bool
	// AllowNonLoopback is required to listen on (or be reached from) an
	// address other than loopback, and then Credentials are required.
	AllowNonLoopback bool
	// Credentials maps user names to bcrypt password hashes (the second
	// field of an htpasswd -B line; see ReadHtpasswd and HashPassword).
	// When set, every request needs HTTP basic auth, on loopback too.
	Credentials map[string]string
	// TLSCert and TLSKey are PEM files; when both are set Start serves
	// HTTPS.
	TLSCert, TLSKey string
	// Logger receives one debug line per request and the server's errors.
	// Nil discards.
	Logger *slog.Logger
	// MaxUploads bounds the upload sessions open at once (default 64).
	MaxUploads int
	// UploadIdleTimeout discards an upload session, and its temporary
	// file, after this long without a request (default 10 minutes).
	UploadIdleTimeout time.Duration
}

// Defaults.
const (
	DefaultAddr              = "127.0.0.1:0"
	DefaultMaxUploads        = 64
	DefaultUploadIdleTimeout = 10 * time.Minute
)

// Errors of Start and New that a caller may want to explain in its own
// terms (for example by naming its flags).
var (
	// ErrNotLoopback: the listen address is not loopback and
	// Options.AllowNonLoopback is not set.
	ErrNotLoopback = errors.New("not a loopback address")
	// ErrNoCredentials: Options.AllowNonLoopback without Credentials.
	ErrNoCredentials = errors.New("serving beyond loopback needs credentials")
)

// withDefaults fills in defaults and rejects conflicting options.
func (o Options) withDefaults() (Options, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxUploads <= 0 {
		o.MaxUploads = DefaultMaxUploads
	}
	if o.UploadIdleTimeout <= 0 {
		o.UploadIdleTimeout = DefaultUploadIdleTimeout
	}
	if o.AllowNonLoopback && len(o.Credentials) == 0 {
		return o, fmt.Errorf("%w: give bcrypt credentials (an htpasswd -B file, or a user and password)", ErrNoCredentials)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return o, fmt.Errorf("TLS needs both a certificate and a key (got certificate %q, key %q)", o.TLSCert, o.TLSKey)
	}
	return o, nil
}
