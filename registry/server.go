package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bb/oci"
)

// shutdownGrace is how long Close waits for requests in flight (a pull
// of a large blob) before it cuts their connections.
const shutdownGrace = 5 * time.Second

// Server is a running registry.
type Server struct {
	srv     *http.Server
	h       *handler
	addr    *net.TCPAddr
	tls     bool
	done    chan struct{}
	served  chan struct{}
	once    sync.Once
	err     error
	servErr error
}

// Start listens on opts.Addr (default 127.0.0.1 at a free port) and
// serves the registry over s in the background until ctx is cancelled or
// Close is called. It refuses an address that is not loopback unless
// opts.AllowNonLoopback is set (and then opts.Credentials are required).
func Start(ctx context.Context, s *oci.Store, opts Options) (*Server, error) {
	h, err := newHandler(s, opts)
	if err != nil {
		return nil, err
	}
	opts = h.opts
	host, _, err := net.SplitHostPort(opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w (want HOST:PORT, for example 127.0.0.1:5000)", opts.Addr, err)
	}
	if !opts.AllowNonLoopback && !isLoopbackListen(host) {
		return nil, fmt.Errorf("refusing to listen on %s: %w (to serve other hosts, opt in explicitly and give credentials)", opts.Addr, ErrNotLoopback)
	}
	var tlsConf *tls.Config
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate %s and key %s: %w", opts.TLSCert, opts.TLSKey, err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", opts.Addr, err)
	}
	addr, _ := ln.Addr().(*net.TCPAddr)
	if addr == nil || (!opts.AllowNonLoopback && !addr.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("refusing to serve on %s (%s): %w", opts.Addr, ln.Addr(), ErrNotLoopback)
	}
	if len(opts.Credentials) == 0 {
		ln = ownerOnly(ln, opts.Logger)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         tlsConf,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
	}
	sv := &Server{srv: srv, h: h, addr: addr, tls: tlsConf != nil, done: make(chan struct{}), served: make(chan struct{})}
	go func() {
		defer close(sv.served)
		var err error
		if tlsConf != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("registry stopped", "err", err)
			sv.servErr = err
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = sv.Close()
		case <-sv.done:
		}
	}()
	opts.Logger.Info("registry listening", "addr", sv.Addr(), "push", opts.AllowPush, "tls", sv.tls)
	return sv, nil
}

// Addr returns the address the server listens on ("127.0.0.1:PORT").
func (s *Server) Addr() string { return s.addr.String() }

// Port returns the port the server listens on.
func (s *Server) Port() int { return s.addr.Port }

// URL returns the server's base URL ("http://127.0.0.1:PORT").
func (s *Server) URL() string {
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// Host returns the registry host clients should use: localhost:PORT when
// the server listens on loopback (or on every address), since smolvm and
// Apple's container choose plain HTTP for localhost on their own.
func (s *Server) Host() string {
	if s.addr.IP.IsLoopback() || s.addr.IP.IsUnspecified() {
		return "localhost:" + strconv.Itoa(s.addr.Port)
	}
	return s.Addr()
}

// Ref returns the reference of repo:tag on this server, for example
// "localhost:PORT/demo:latest". An empty tag means latest; a digest
// ("sha256:...") gives repo@digest.
func (s *Server) Ref(repo, tag string) string {
	switch {
	case tag == "":
		tag = latestTag
	case strings.Contains(tag, ":"):
		return s.Host() + "/" + repo + "@" + tag
	}
	return s.Host() + "/" + repo + ":" + tag
}

// Close stops the server: requests in flight get shutdownGrace to finish,
// then their connections are cut, and open upload sessions are
// discarded. Close is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.served
		s.h.uploads.closeAll()
		s.err = s.servErr
	})
	return s.err
}

// Done is closed when the server has stopped (Close or the context
// given to Start).
func (s *Server) Done() <-chan struct{} { return s.served }
