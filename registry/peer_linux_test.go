package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bb/oci"
)

// peerClientEnv makes the test binary a client that GETs the URL in it
// and prints the status (TestPeerClient).
const peerClientEnv = "BB_REGISTRY_PEER_CLIENT"

func TestPeerClient(t *testing.T) {
	u := os.Getenv(peerClientEnv)
	if u == "" {
		t.Skip("helper process of TestServeOnlyToOwnUser")
	}
	resp, err := http.Get(u)
	if err != nil {
		fmt.Println("STATUS error")
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	fmt.Printf("STATUS %d\n", resp.StatusCode)
}

// Without credentials, bb serve on loopback answers only its own user
// and root: every local user reaches loopback, and the store is private.
func TestServeOnlyToOwnUser(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to start a client as another user")
		}
		t.Skip("needs root to start a client as another user")
	}
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := Start(ctx, s, Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// A copy of the test binary that another user may run.
	dir, err := os.MkdirTemp("", "bb-peer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "client")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		uid  uint32
		want string
	}{{65534, "STATUS error"}, {0, "STATUS 200"}} {
		cmd := exec.Command(bin, "-test.run=^TestPeerClient$")
		cmd.Env = append(os.Environ(), peerClientEnv+"="+srv.URL()+"/v2/")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: c.uid, Gid: c.uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as uid %d: %v\n%s", c.uid, err, out)
		}
		if !strings.Contains(string(out), c.want) {
			t.Errorf("client as uid %d: want %q, got:\n%s", c.uid, c.want, out)
		}
	}
}
