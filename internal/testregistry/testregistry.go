package testregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options inject failures.
type Options struct {
	// NoBlobs makes every blob request fail (404), so a pull fails after
	// the manifest was found.
	NoBlobs bool
}

// Serve returns a pack.ServeFunc starting a registry over the store.
func Serve(opts Options) pack.ServeFunc {
	return func(ctx context.Context, s *oci.Store) (pack.Server, error) {
		return Start(s, opts)
	}
}

// Server is a running test registry.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	host string
}

// Start serves s on 127.0.0.1 on a free port.
func Start(s *oci.Store, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	h := &handler{s: s, opts: opts}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	return &Server{ln: ln, srv: srv, host: "localhost:" + strconv.Itoa(port)}, nil
}

// Ref implements pack.Server.
func (s *Server) Ref(repo, tag string) string { return s.host + "/" + repo + ":" + tag }

// Close implements pack.Server.
func (s *Server) Close() error { return s.srv.Close() }

type handler struct {
	s    *oci.Store
	opts Options
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "read-only registry", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" || r.URL.Path == "/v2" {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		w.WriteHeader(http.StatusOK)
		return
	}
	i := strings.LastIndex(p, "/manifests/")
	j := strings.LastIndex(p, "/blobs/")
	switch {
	case i > 0:
		h.manifest(w, r, p[:i], p[i+len("/manifests/"):])
	case j > 0:
		h.blob(w, r, p[j+len("/blobs/"):])
	default:
		regError(w, http.StatusNotFound, "NAME_UNKNOWN", "unknown path "+r.URL.Path)
	}
}

func (h *handler) manifest(w http.ResponseWriter, r *http.Request, repo, ref string) {
	ctx := r.Context()
	var desc v1.Descriptor
	var err error
	if strings.HasPrefix(ref, "sha256:") {
		desc, err = h.s.Resolve(ctx, ref)
	} else if ref == "latest" {
		desc, err = h.s.Resolve(ctx, repo)
	} else {
		err = oci.ErrNotFound
	}
	if err != nil {
		regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", fmt.Sprintf("%s:%s: %v", repo, ref, err))
		return
	}
	b, err := h.s.ReadBlob(ctx, desc.Digest, oci.MaxManifestSize)
	if err != nil {
		regError(w, http.StatusNotFound, "MANIFEST_UNKNOWN", err.Error())
		return
	}
	mt := desc.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	w.Header().Set("Content-Type", string(mt))
	w.Header().Set("Docker-Content-Digest", desc.Digest.String())
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, bytes.NewReader(b))
}

func (h *handler) blob(w http.ResponseWriter, r *http.Request, ref string) {
	if h.opts.NoBlobs {
		regError(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob unknown to registry: "+ref)
		return
	}
	d, err := v1.NewHash(ref)
	if err != nil {
		regError(w, http.StatusBadRequest, "DIGEST_INVALID", err.Error())
		return
	}
	f, err := h.s.Blob(r.Context(), d)
	if errors.Is(err, oci.ErrNotFound) || err != nil {
		regError(w, http.StatusNotFound, "BLOB_UNKNOWN", ref)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		regError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Docker-Content-Digest", d.String())
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

func regError(w http.ResponseWriter, code int, kind, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, kind, msg)
}
