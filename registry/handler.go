package registry

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// handler is the registry's http.Handler.
type handler struct {
	store    *oci.Store
	opts     Options
	log      *slog.Logger
	auth     *basicAuth
	uploads  *uploads
	subjects *manifestCache
}

var (
	_ http.Handler = (*handler)(nil)
	_ io.Closer    = (*handler)(nil)
)

// New returns the registry over s as an http.Handler, for callers that
// run their own server (Start runs one). The handler also implements
// io.Closer: Close discards the upload sessions still open.
func New(s *oci.Store, opts Options) (http.Handler, error) {
	return newHandler(s, opts)
}

func newHandler(s *oci.Store, opts Options) (*handler, error) {
	if s == nil {
		return nil, errors.New("registry needs a store")
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	h := &handler{store: s, opts: opts, log: opts.Logger, subjects: newManifestCache(4096)}
	if len(opts.Credentials) > 0 {
		if h.auth, err = newBasicAuth(opts.Credentials); err != nil {
			return nil, err
		}
	}
	h.uploads = newUploads(s, opts.MaxUploads, opts.UploadIdleTimeout, h.log)
	return h, nil
}

// Close discards the open upload sessions and their temporary files.
func (h *handler) Close() error {
	h.uploads.closeAll()
	return nil
}

// route is a parsed request path.
type route struct {
	kind string // "base", "catalog", "tags", "manifest", "blob", "upload", "referrers"
	repo string
	slug string // the repository's store name (see storeName)
	ref  string // tag or digest, blob digest, or upload session id ("" to start one)
}

// parsePath splits a /v2/ path into its route. Repository names may have
// several components in the specification; validation later refuses the
// ones the store cannot hold.
func parsePath(p string) (route, bool) {
	if p == "/v2" || p == "/v2/" {
		return route{kind: "base"}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	s := strings.Split(rest, "/")
	n := len(s)
	name := func(k int) string { return strings.Join(s[:k], "/") }
	switch {
	case n >= 4 && s[n-3] == "blobs" && s[n-2] == "uploads":
		return route{kind: "upload", repo: name(n - 3), ref: s[n-1]}, true
	case n >= 3 && s[n-2] == "blobs" && s[n-1] == "uploads":
		return route{kind: "upload", repo: name(n - 2)}, true
	case n >= 3 && s[n-2] == "blobs":
		return route{kind: "blob", repo: name(n - 2), ref: s[n-1]}, true
	case n >= 3 && s[n-2] == "manifests":
		return route{kind: "manifest", repo: name(n - 2), ref: s[n-1]}, true
	case n >= 3 && s[n-2] == "tags" && s[n-1] == "list":
		return route{kind: "tags", repo: name(n - 2)}, true
	case n >= 3 && s[n-2] == "referrers":
		return route{kind: "referrers", repo: name(n - 2), ref: s[n-1]}, true
	}
	return route{}, false
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	start := time.Now()
	w := &statusWriter{ResponseWriter: rw}
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	e := h.serve(w, r)
	if e != nil {
		if e.Status >= 500 {
			h.log.Error("registry request failed", "method", r.Method, "path", r.URL.Path, "err", e.Message)
		}
		if !w.wrote {
			writeError(w, r, e)
		}
	}
	h.log.Debug("registry", "method", r.Method, "path", r.URL.Path, "status", w.status, "bytes", w.n,
		"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr)
}

func (h *handler) serve(w http.ResponseWriter, r *http.Request) *regError {
	if !h.opts.AllowNonLoopback {
		if !loopbackRemote(r.RemoteAddr) {
			return newError(403, codeDenied, "this registry serves loopback clients only")
		}
		if !loopbackHost(r.Host) {
			return newError(403, codeDenied, "this registry only answers to localhost and loopback addresses, not "+quote(r.Host))
		}
	}
	if h.auth != nil && !h.auth.check(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
		return newError(401, codeUnauthorized, "authentication required: log in with the user and password this registry was started with")
	}
	rt, ok := parsePath(r.URL.Path)
	if !ok {
		return newError(404, codeUnsupported, "no such endpoint: "+quote(r.URL.Path))
	}
	write := false
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		write = true
	default:
		return methodNotAllowed(w)
	}
	// Deleting a manifest, tag or blob needs AllowDelete; every other write
	// (cancelling an upload too) needs AllowPush.
	del := r.Method == http.MethodDelete && (rt.kind == "manifest" || rt.kind == "blob")
	if del && !h.opts.AllowDelete {
		w.Header().Set("Allow", "GET, HEAD")
		return newError(405, codeUnsupported, "deleting is not enabled here: start bb serve with --allow-delete, or remove snapshots with bb rm on the serving host")
	}
	if write && !del && !h.opts.AllowPush && rt.kind != "base" {
		w.Header().Set("Allow", "GET, HEAD")
		return newError(405, codeUnsupported, "this registry is read-only: start bb serve with --allow-push to push into it")
	}
	if rt.kind != "base" && rt.kind != "catalog" {
		var e *regError
		if rt.slug, e = storeName(rt.repo); e != nil {
			return e
		}
	}
	ctx := r.Context()
	switch rt.kind {
	case "base":
		if write {
			return methodNotAllowed(w)
		}
		return writeJSON(w, r, 200, "application/json", struct{}{})
	case "catalog":
		if write {
			return methodNotAllowed(w)
		}
		return h.catalog(ctx, w, r)
	case "tags":
		if write {
			return methodNotAllowed(w)
		}
		return h.tagsList(ctx, w, r, rt)
	case "referrers":
		if write {
			return methodNotAllowed(w)
		}
		return h.referrers(ctx, w, r, rt.repo, rt.ref)
	case "manifest":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.getManifest(ctx, w, r, rt)
		case http.MethodPut:
			return h.putManifest(ctx, w, r, rt)
		case http.MethodDelete:
			return h.deleteManifest(ctx, w, rt)
		}
		return methodNotAllowed(w)
	case "blob":
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			return h.getBlob(ctx, w, r, rt.ref)
		case http.MethodDelete:
			return h.deleteBlob(ctx, w, rt.ref)
		}
		return methodNotAllowed(w)
	case "upload":
		return h.upload(ctx, w, r, rt.repo, rt.ref)
	}
	return newError(404, codeUnsupported, "no such endpoint")
}

func methodNotAllowed(w http.ResponseWriter) *regError {
	return newError(405, codeUnsupported, "method not allowed here")
}

// internal reports a server-side failure.
func internal(what string, err error) *regError {
	return newError(500, "UNKNOWN", fmt.Sprintf("%s: %v", what, err))
}

// parseDigest parses a sha256 or sha512 digest from a path or query.
func parseDigest(s string) (v1.Hash, *regError) {
	h, err := v1.NewHash(s)
	if err == nil {
		err = oci.ValidHash(h)
	}
	if err != nil {
		e := newError(400, codeDigestInvalid, "invalid digest "+quote(s)+": this registry supports sha256 and sha512 digests")
		e.Detail = map[string]string{"digest": s}
		return v1.Hash{}, e
	}
	return h, nil
}

// loopbackHost reports whether a Host header names this host by a
// loopback name (or is absent).
func loopbackHost(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackRemote reports whether the peer address is loopback. Addresses
// that are not IP (a Unix socket) count as local.
func loopbackRemote(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true
	}
	ip := net.ParseIP(host)
	return ip == nil || ip.IsLoopback()
}

// isLoopbackListen reports whether a listen host is loopback-only.
func isLoopbackListen(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// location returns the path of a blob or manifest for Location headers.
func location(repo, kind, ref string) string {
	return "/v2/" + repo + "/" + kind + "/" + url.PathEscape(ref)
}

// statusWriter records the status and byte count of a response, and
// passes io.ReaderFrom through so that blob bodies still go out with
// sendfile.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = 200, true
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.status, w.wrote = 200, true
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writerOnly hides ReadFrom, so io.Copy does not recurse.
type writerOnly struct{ io.Writer }
