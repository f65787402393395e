package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// client talks to one repository of one registry.
type client struct {
	opts Options
	// reg is the registry's host[:port]; repo the repository path in it.
	reg, repo string
	// scheme is "https", or "http" for a plain-HTTP registry.
	scheme string
	// base carries TLS settings and the plain-HTTP guard; http adds auth.
	base http.RoundTripper
	http *http.Client
	// anonymous is set when no credentials were found for reg.
	anonymous bool
}

// dial connects to repo: it finds the scheme the registry speaks,
// resolves credentials and performs the auth handshake for scopes.
func dial(ctx context.Context, repo name.Repository, opts Options, scopes []string) (*client, error) {
	base, err := opts.transport()
	if err != nil {
		return nil, err
	}
	c := &client{opts: opts, reg: repo.RegistryStr(), repo: repo.RepositoryStr(), base: base}
	// The probe and the auth handshake are bounded by opts.AuthTimeout;
	// go-containerregistry's handshake has no timeout of its own.
	guard := newAuthGuard(base, opts.AuthTimeout)
	if c.scheme, err = probe(ctx, guard, c.reg, opts.Insecure || opts.PlainHTTP); err != nil {
		return nil, err
	}
	auth, err := authn.Resolve(ctx, opts.Keychain, repo)
	if err != nil {
		return nil, fmt.Errorf("reading credentials for %s: %w (check %s)", c.reg, err, DockerConfigPath())
	}
	c.anonymous = auth == authn.Anonymous
	var nopts []name.Option
	if c.scheme == "http" {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(c.reg, nopts...)
	if err != nil {
		return nil, err
	}
	rt, err := transport.NewWithContext(ctx, reg, auth, transport.NewUserAgent(guard, opts.UserAgent), scopes)
	guard.done()
	if err != nil {
		return nil, c.explain("authenticating to", err)
	}
	c.http = &http.Client{Transport: rt}
	return c, nil
}

// where names the repository in messages: "registry/repo".
func (c *client) where() string { return c.reg + "/" + c.repo }

// url returns the URL of path under the repository's /v2/<repo>/.
func (c *client) url(path string) string {
	return c.scheme + "://" + c.reg + "/v2/" + c.repo + "/" + path
}

// do sends req and returns the response when its status is one of ok;
// otherwise it reads the registry's error and returns it.
func (c *client) do(req *http.Request, ok ...int) (*http.Response, error) {
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if err := transport.CheckError(resp, ok...); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// explain wraps err from an action on the repository, turning auth
// failures into advice that names the registry.
func (c *client) explain(action string, err error) error {
	if err == nil {
		return nil
	}
	status := 0
	var te *transport.Error
	var oe *errcode.ErrorResponse
	switch {
	case errors.As(err, &te):
		status = te.StatusCode
	case errors.As(err, &oe):
		status = oe.StatusCode
	}
	switch status {
	case http.StatusUnauthorized:
		if c.anonymous {
			return fmt.Errorf("%s %s: unauthorized: %s needs credentials: docker login %s (bb reads %s and docker credential helpers)", action, c.where(), c.reg, c.reg, DockerConfigPath())
		}
		return fmt.Errorf("%s %s: unauthorized: check the credentials for %s in %s or docker login %s", action, c.where(), c.reg, DockerConfigPath(), c.reg)
	case http.StatusForbidden:
		return fmt.Errorf("%s %s: denied: the credentials for %s do not allow this on %s (%v)", action, c.where(), c.reg, c.repo, err)
	}
	if errors.Is(err, errPlainHTTP) {
		return err
	}
	return fmt.Errorf("%s %s: %w", action, c.where(), err)
}

// DockerConfigPath is the docker config file credentials are read from,
// for messages.
func DockerConfigPath() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	return "~/.docker/config.json"
}

// probe finds whether host speaks HTTPS or (where allowed) plain HTTP.
func probe(ctx context.Context, base http.RoundTripper, host string, allowPlain bool) (string, error) {
	try := func(scheme string) error {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := base.RoundTrip(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil
	}
	httpsErr := try("https")
	if httpsErr == nil {
		return "https", nil
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	var certErr *tls.CertificateVerificationError
	var uaErr x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	if errors.As(httpsErr, &certErr) || errors.As(httpsErr, &uaErr) || errors.As(httpsErr, &hostErr) {
		return "", fmt.Errorf("registry %s: its TLS certificate is not trusted: %w (pass --ca-file with the CA that signed it, or set SSL_CERT_FILE)", host, httpsErr)
	}
	if allowPlain || isLoopback(host) {
		httpErr := try("http")
		if httpErr == nil {
			return "http", nil
		}
		return "", fmt.Errorf("cannot reach registry %s: over HTTPS: %v; over HTTP: %w", host, httpsErr, httpErr)
	}
	hint := ""
	if strings.Contains(httpsErr.Error(), "HTTP response to HTTPS client") {
		hint = " (it speaks plain HTTP: pass --plain-http to allow that)"
	}
	return "", fmt.Errorf("cannot reach registry %s over HTTPS: %w%s", host, httpsErr, hint)
}

// resolve makes a Location header absolute against the request's URL.
func resolve(base *url.URL, loc string) (string, error) {
	if loc == "" {
		return "", errors.New("registry sent no Location header")
	}
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("registry sent a bad Location %q: %w", loc, err)
	}
	return base.ResolveReference(u).String(), nil
}
