package testregistry

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian installs the distribution registry.
const Binary = "/usr/bin/docker-registry"

// Options choose the registry's mode. The zero value is plain HTTP
// without auth.
type Options struct {
	// TLS serves HTTPS with a server certificate for 127.0.0.1 and
	// localhost, signed by a CA written to Registry.CAFile.
	TLS bool
	// Auth requires htpasswd basic auth (Username, Password). It implies
	// TLS, as distribution's htpasswd backend expects.
	Auth bool
	// Username and Password default to "bb" and "bottle-secret".
	Username, Password string
	// Delete enables DELETE of manifests and blobs.
	Delete bool
}

// Registry is a running docker-registry.
type Registry struct {
	// Addr is host:port, for references ("127.0.0.1:PORT/repo:tag").
	Addr string
	// URL is the base URL, "http://127.0.0.1:PORT" or "https://...".
	URL string
	// CAFile is the PEM file of the CA that signed the server
	// certificate ("" without TLS).
	CAFile string
	// Username and Password are the htpasswd credentials ("" without Auth).
	Username, Password string
	// Dir holds the config, the storage and the log.
	Dir string
	// StorageDir is the filesystem driver's root directory.
	StorageDir string

	t       testing.TB
	config  string
	logFile string
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	pool    *x509.CertPool
}

// Available reports whether docker-registry is installed.
func Available() bool {
	_, err := os.Stat(Binary)
	return err == nil
}

// Require skips t when docker-registry is missing, or fails it when the
// CI environment variable is set.
func Require(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing (apt-get install docker-registry)", Binary)
	}
	t.Skipf("%s is missing (apt-get install docker-registry)", Binary)
}

// Start runs a registry for the duration of t.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	Require(t)
	if opts.Auth {
		opts.TLS = true
		if opts.Username == "" {
			opts.Username = "bb"
		}
		if opts.Password == "" {
			opts.Password = "bottle-secret"
		}
	}
	dir := t.TempDir()
	r := &Registry{t: t, Dir: dir, StorageDir: filepath.Join(dir, "storage"), logFile: filepath.Join(dir, "registry.log")}
	if err := os.MkdirAll(r.StorageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	var tlsCfg, authCfg string
	if opts.TLS {
		scheme = "https"
		certFile, keyFile, err := r.writeCerts()
		if err != nil {
			t.Fatalf("generating test certificates: %v", err)
		}
		tlsCfg = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	}
	if opts.Auth {
		r.Username, r.Password = opts.Username, opts.Password
		pw := filepath.Join(dir, "htpasswd")
		if err := writeHtpasswd(pw, opts.Username, opts.Password); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		authCfg = fmt.Sprintf("auth:\n  htpasswd:\n    realm: bb-test\n    path: %s\n", pw)
	}
	t.Cleanup(r.kill)
	// freeAddr's port is free when it returns, not necessarily when the
	// registry binds it: another process may take it in between. Then
	// the registry exits at start, and it gets another port.
	for try := 1; ; try++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		r.Addr, r.URL = addr, scheme+"://"+addr
		_ = os.Remove(r.logFile) // this try's log only
		if err := r.writeConfig(opts, tlsCfg, authCfg); err != nil {
			t.Fatal(err)
		}
		err = r.start()
		if err == nil {
			return r
		}
		if try == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
		t.Logf("port %s taken meanwhile, trying another: %v", addr, err)
	}
}

// writeConfig writes the registry's config file for r.Addr.
func (r *Registry) writeConfig(opts Options, tlsCfg, authCfg string) error {
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: %t
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: bb-test-fixed-secret-so-uploads-survive-restarts
%s%s`, r.StorageDir, opts.Delete, r.Addr, tlsCfg, authCfg)
	r.config = filepath.Join(r.Dir, "config.yml")
	return os.WriteFile(r.config, []byte(cfg), 0o644)
}

// Repo returns "127.0.0.1:PORT/name", a repository reference.
func (r *Registry) Repo(name string) string { return r.Addr + "/" + name }

// Client returns an HTTP client that trusts the registry's CA (when it
// has one) and sends the registry's credentials (when it has them).
func (r *Registry) Client() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.pool != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: r.pool}
	}
	var rt http.RoundTripper = tr
	if r.Username != "" {
		rt = basicAuth{user: r.Username, pass: r.Password, inner: tr}
	}
	return &http.Client{Transport: rt, Timeout: time.Minute}
}

type basicAuth struct {
	user, pass string
	inner      http.RoundTripper
}

func (b basicAuth) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.SetBasicAuth(b.user, b.pass)
	return b.inner.RoundTrip(req)
}

// DockerConfig writes a docker config.json holding the registry's
// credentials into dir and returns its path. Point DOCKER_CONFIG at dir
// (or write it to $HOME/.docker) for clients that read it.
func (r *Registry) DockerConfig(dir, password string) string {
	r.t.Helper()
	if password == "" {
		password = r.Password
	}
	auth := base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + password))
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{r.Addr: map[string]string{"auth": auth}}})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	p := filepath.Join(dir, "config.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// Stop stops the registry (SIGTERM, then SIGKILL after a few seconds).
// Its storage stays, so Restart brings back what was pushed.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(syscall.SIGTERM)
}

// Kill stops the registry at once with SIGKILL, as a crash would.
func (r *Registry) Kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(syscall.SIGKILL)
}

func (r *Registry) kill() { r.Kill() }

func (r *Registry) stopLocked(sig syscall.Signal) {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(sig)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	r.cmd = nil
}

// Restart stops the registry if it runs and starts it again on the same
// address with the same storage and secret.
func (r *Registry) Restart() {
	r.t.Helper()
	r.Stop()
	if err := r.start(); err != nil {
		r.t.Fatal(err)
	}
}

// Log returns what the registry has logged so far.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(r.logFile)
	return string(b)
}

func (r *Registry) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(Binary, "serve", r.config)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", Binary, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.cmd, r.exited = cmd, exited
	client := r.Client()
	client.Timeout = time.Second
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			r.cmd = nil
			return fmt.Errorf("docker-registry exited at start:\n%s", tail(r.Log()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/", nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		if time.Now().After(deadline) {
			r.stopLocked(syscall.SIGKILL)
			return fmt.Errorf("docker-registry did not answer on %s (last error %v):\n%s", r.URL, err, tail(r.Log()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func writeHtpasswd(path, user, pass string) error {
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		return errors.New("htpasswd is missing (apt-get install apache2-utils)")
	}
	out, err := exec.Command(bin, "-nbB", user, pass).Output()
	if err != nil {
		return fmt.Errorf("htpasswd: %w", err)
	}
	return os.WriteFile(path, bytes.TrimSpace(out), 0o600)
}

// writeCerts generates a CA and a server certificate for 127.0.0.1 and
// localhost, and writes ca.pem, cert.pem and key.pem into r.Dir.
func (r *Registry) writeCerts() (certFile, keyFile string, err error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bb test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", err
	}
	r.CAFile = filepath.Join(r.Dir, "ca.pem")
	certFile = filepath.Join(r.Dir, "cert.pem")
	keyFile = filepath.Join(r.Dir, "key.pem")
	for p, blk := range map[string]*pem.Block{
		r.CAFile: {Type: "CERTIFICATE", Bytes: caDER},
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
			return "", "", err
		}
	}
	r.pool = x509.NewCertPool()
	r.pool.AddCert(caCert)
	return certFile, keyFile, nil
}

// Has reports whether the registry's storage holds a blob (read from
// disk, so it works while the registry is stopped).
func (r *Registry) Has(digest string) bool {
	hex := strings.TrimPrefix(digest, "sha256:")
	if len(hex) < 2 {
		return false
	}
	_, err := os.Stat(filepath.Join(r.StorageDir, "docker/registry/v2/blobs/sha256", hex[:2], hex, "data"))
	return err == nil
}
