package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// runBB runs one bb command to completion.
func runBB(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := New()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// serving is a bb serve running in the test.
type serving struct {
	lines []string // what it printed: the banner and the references
	stop  func() error
}

// startServe runs bb serve with args until the test ends and waits for
// it to print its banner and nrefs references.
func startServe(t *testing.T, nrefs int, args ...string) *serving {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := New()
	cmd.SetArgs(args)
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	s := &serving{}
	sc := bufio.NewScanner(pr)
	for len(s.lines) < 1+nrefs && sc.Scan() {
		s.lines = append(s.lines, sc.Text())
	}
	if len(s.lines) < 1+nrefs {
		cancel()
		t.Fatalf("bb serve printed %q, then: %v", s.lines, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	stopped := false
	s.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("bb serve did not stop")
			return nil
		}
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("bb serve: %v", err)
		}
	})
	return s
}

// url returns the base URL from the banner.
func (s *serving) url(t *testing.T) string {
	for _, f := range strings.Fields(s.lines[0]) {
		if strings.HasPrefix(f, "http://") || strings.HasPrefix(f, "https://") {
			return f
		}
	}
	t.Fatalf("no URL in %q", s.lines[0])
	return ""
}

func commitDir(t *testing.T, home, slug string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "hello"), []byte("hello from "+slug+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runBB(t, "--home", home, "commit", "--from-dir", root, "--slug", slug); err != nil {
		t.Fatalf("bb commit: %v\n%s", err, out)
	}
}

func TestServe(t *testing.T) {
	home := t.TempDir()
	commitDir(t, home, "alpha")
	commitDir(t, home, "beta")
	s := startServe(t, 2, "--home", home, "serve", "--allow-push")
	if !strings.Contains(s.lines[0], "push allowed") {
		t.Errorf("banner %q", s.lines[0])
	}
	port := strings.TrimPrefix(s.url(t), "http://127.0.0.1:")
	want := []string{"localhost:" + port + "/alpha:latest", "localhost:" + port + "/beta:latest"}
	if strings.Join(s.lines[1:], " ") != strings.Join(want, " ") {
		t.Fatalf("references %q, want %q", s.lines[1:], want)
	}
	store, err := oci.Open(filepath.Join(home, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	cur, err := store.Resolve(t.Context(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(s.lines[1])
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := img.Digest(); d != cur.Digest {
		t.Errorf("pulled %s, store has %s", d, cur.Digest)
	}
	ri, _ := random.Image(1024, 1)
	dst, _ := name.ParseReference("localhost:" + port + "/gamma:latest")
	if err := remote.Write(dst, ri); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Resolve(t.Context(), "gamma"); err != nil {
		t.Errorf("pushed image not in the store: %v", err)
	}
	// A push is a snapshot: bb list shows it at once, nested names as
	// their slug.
	nested, _ := name.ParseReference("localhost:" + port + "/team/delta:latest")
	if err := remote.Write(nested, ri); err != nil {
		t.Fatal(err)
	}
	out, err := runBB(t, "--home", home, "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, slug := range []string{"gamma ", "team___delta "} {
		if !strings.Contains(out, "\n"+slug) {
			t.Errorf("bb list does not show %s:\n%s", slug, out)
		}
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(s.url(t) + "/v2/"); err == nil {
		t.Error("still serving after the context ended")
	}
}

func TestServeRefusals(t *testing.T) {
	home := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "0.0.0.0:0"}, "--listen-any"},
		{[]string{"--addr", "0.0.0.0:0", "--listen-any"}, "needs credentials"},
		{[]string{"--user", "u"}, "--password-file"},
		{[]string{"--htpasswd", "x", "--user", "u"}, "not both"},
		{[]string{"--htpasswd", filepath.Join(home, "missing")}, "--htpasswd"},
		{[]string{"--tls-cert", "c.pem"}, "key"},
	} {
		out, err := runBB(t, append([]string{"--home", home, "serve"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bb serve %v: %v (output %q), want an error about %s", c.args, err, out, c.want)
		}
	}
}

func TestServeCredentials(t *testing.T) {
	home := t.TempDir()
	commitDir(t, home, "alpha")
	// An htpasswd file as apache2-utils makes it (bcrypt at the lowest
	// cost, to keep the test fast).
	ht := filepath.Join(t.TempDir(), "htpasswd")
	if p, err := exec.LookPath("htpasswd"); err == nil {
		if out, err := exec.Command(p, "-B", "-C", "4", "-b", "-c", ht, "alice", "hunter2").CombinedOutput(); err != nil {
			t.Fatalf("htpasswd: %v\n%s", err, out)
		}
	} else {
		h, _ := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
		if err := os.WriteFile(ht, []byte("alice:"+string(h)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := startServe(t, 1, "--home", home, "serve", "--listen-any", "--addr", "0.0.0.0:0", "--htpasswd", ht)
	port := s.url(t)[strings.LastIndex(s.url(t), ":")+1:]
	resp, err := http.Get("http://127.0.0.1:" + port + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("without credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	ref, _ := name.ParseReference("127.0.0.1:"+port+"/alpha:latest", name.Insecure)
	if _, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "alice", Password: "hunter2"})); err != nil {
		t.Errorf("pull with credentials: %v", err)
	}
	if _, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "alice", Password: "nope"})); err == nil {
		t.Error("pull with a wrong password succeeded")
	}
}

func TestServePasswordFile(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("hunter2\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds, err := serveCredentials("", "alice", pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(creds["alice"]), []byte("hunter2")) != nil {
		t.Errorf("credentials %v do not match the file's first line", creds)
	}
	_ = os.WriteFile(pwFile, []byte("\n"), 0o600)
	if _, err := serveCredentials("", "alice", pwFile); err == nil {
		t.Error("empty password accepted")
	}
}
