package packserve

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/registry"
)

// Serve starts the embedded registry over the store, as bb does.
func Serve(ctx context.Context, s *oci.Store) (pack.Server, error) {
	return registry.Start(ctx, s, registry.Options{})
}

// NoBlobs serves the store through a proxy that answers every blob
// request with 404 BLOB_UNKNOWN.
func NoBlobs(ctx context.Context, s *oci.Store) (pack.Server, error) {
	reg, err := registry.Start(ctx, s, registry.Options{})
	if err != nil {
		return nil, err
	}
	target, _ := url.Parse(reg.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		reg.Close()
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	return &failing{reg: reg, srv: srv, host: "localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)}, nil
}

type failing struct {
	reg  *registry.Server
	srv  *http.Server
	host string
}

func (f *failing) Ref(repo, tag string) string { return f.host + "/" + repo + ":" + tag }

func (f *failing) Close() error {
	f.srv.Close()
	return f.reg.Close()
}
