package registry_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

func TestListenPolicy(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		if _, err := registry.Start(ctx, f.store, registry.Options{Addr: addr}); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Start(%s) without AllowNonLoopback: %v", addr, err)
		}
	}
	if _, err := registry.Start(ctx, f.store, registry.Options{Addr: "0.0.0.0:0", AllowNonLoopback: true}); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("AllowNonLoopback without credentials: %v", err)
	}
	if _, err := registry.New(f.store, registry.Options{AllowNonLoopback: true}); err == nil {
		t.Error("New with AllowNonLoopback and no credentials")
	}
	if _, err := registry.New(f.store, registry.Options{Credentials: map[string]string{"u": "plain"}}); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("plain-text credential: %v", err)
	}
	if _, err := registry.Start(ctx, f.store, registry.Options{TLSCert: "x.pem"}); err == nil {
		t.Error("TLS certificate without key")
	}
	srv := start(t, f.store, registry.Options{Addr: "localhost:0"})
	if !strings.HasPrefix(srv.Addr(), "127.0.0.1:") && !strings.HasPrefix(srv.Addr(), "[::1]:") {
		t.Errorf("Addr %s", srv.Addr())
	}
	// A page that rebinds its own name to 127.0.0.1 cannot read the store.
	req, _ := http.NewRequest("GET", srv.URL()+"/v2/_catalog", nil)
	req.Host = "evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("Host evil.example: %d", resp.StatusCode)
	}
	req.Host = "localhost:1234"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("Host localhost: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestBasicAuth(t *testing.T) {
	f := newFixture(t)
	// The lowest bcrypt cost keeps the test fast (under -race too).
	hb, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(hb)
	creds, err := registry.ReadHtpasswd(strings.NewReader("# users\nalice:" + hash + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.ReadHtpasswd(strings.NewReader("bob:{SHA}abc=\n")); err == nil || !strings.Contains(err.Error(), "htpasswd -B") {
		t.Errorf("SHA htpasswd entry: %v", err)
	}
	// Listening on every address needs the explicit opt-in and credentials.
	srv := start(t, f.store, registry.Options{Addr: "0.0.0.0:0", AllowNonLoopback: true, Credentials: creds})
	u := "http://127.0.0.1:" + portOf(t, srv.Addr()) + "/v2/"
	r := do(t, "GET", u, nil).expect(t, 401, "UNAUTHORIZED")
	if r.Header.Get("WWW-Authenticate") != `Basic realm="bb"` {
		t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	bad, _ := http.NewRequest("GET", u, nil)
	bad.SetBasicAuth("alice", "wrong")
	if resp, err := http.DefaultClient.Do(bad); err != nil || resp.StatusCode != 401 {
		t.Errorf("wrong password: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	bad.SetBasicAuth("mallory", "s3cret")
	if resp, err := http.DefaultClient.Do(bad); err != nil || resp.StatusCode != 401 {
		t.Errorf("unknown user: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// go-containerregistry answers the challenge with the credentials.
	ref, _ := name.ParseReference("127.0.0.1:"+portOf(t, srv.Addr())+"/demo:latest", name.Insecure)
	if _, err := remote.Image(ref); err == nil {
		t.Error("pull without credentials succeeded")
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != f.demo.Manifest.Digest {
		t.Errorf("digest %s", d)
	}
	// On every address, Host is not restricted (credentials protect it).
	if ip := nonLoopbackIP(); ip != "" {
		req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(ip, portOf(t, srv.Addr()))+"/v2/", nil)
		req.SetBasicAuth("alice", "s3cret")
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Errorf("from %s: %v %v", ip, resp, err)
		} else {
			resp.Body.Close()
		}
	}
}

func portOf(t *testing.T, addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func nonLoopbackIP() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}

// selfSigned writes a certificate for localhost and 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	f := newFixture(t)
	cert, key, pool := selfSigned(t)
	srv := start(t, f.store, registry.Options{TLSCert: cert, TLSKey: key, AllowPush: true})
	if !strings.HasPrefix(srv.URL(), "https://") {
		t.Fatalf("URL %s", srv.URL())
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	ref, _ := name.ParseReference(srv.Ref("demo", "latest"))
	img, err := remote.Image(ref, remote.WithTransport(tr))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != f.demo.Manifest.Digest {
		t.Errorf("digest %s", d)
	}
	dst, _ := name.ParseReference(srv.Ref("copied", "latest"))
	if err := remote.Write(dst, img, remote.WithTransport(tr)); err != nil {
		t.Fatal(err)
	}
}

func TestHashPassword(t *testing.T) {
	h, err := registry.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	// Comparing would cost another bcrypt round (seconds under -race);
	// cmd/bb/cli's TestServePasswordFile does it.
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c != bcrypt.DefaultCost {
		t.Errorf("hash %q: cost %d (%v)", h, c, err)
	}
	if _, err := registry.HashPassword(""); err == nil {
		t.Error("empty password accepted")
	}
}
