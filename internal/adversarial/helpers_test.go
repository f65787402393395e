package adversarial

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/oci"
)

// run runs one bb command in this process against home (store home/oci),
// as a separate bb process would: every command opens the store anew.
func run(t testing.TB, home string, args ...string) (string, error) {
	t.Helper()
	cmd := cli.New()
	var out, errb bytes.Buffer
	cmd.SetArgs(append([]string{"--home", home, "--store", filepath.Join(home, "oci")}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(""))
	err := cmd.ExecuteContext(context.Background())
	return out.String() + errb.String(), err
}

func mustRun(t testing.TB, home string, args ...string) string {
	t.Helper()
	out, err := run(t, home, args...)
	if err != nil {
		t.Fatalf("bb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// commitJSON is what bb commit --json prints, in part.
type commitJSON struct {
	Digest string `json:"digest"`
}

// tree writes a root filesystem of about size bytes (incompressible, so
// the layer has about that size) into dir.
func tree(t testing.TB, dir string, seed uint64, size int) {
	t.Helper()
	files := map[string][]byte{
		"etc/os-release":   []byte("ID=adversarial\n"),
		"home/node/seed":   []byte(strings.Repeat("x", int(seed%97)) + "\n"),
		"home/node/random": randomBytes(seed, size),
	}
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

// checkStore fails t unless the store under root is valid: every tag
// resolves to a complete image, every blob hashes to its name, nothing
// is readable by other users. Temporary files of killed writes are
// allowed (they are fresh; the next write after the grace period or bb
// gc removes them); it returns how many there are.
func checkStore(t testing.TB, root string) int {
	t.Helper()
	s, err := oci.Open(root, oci.WithoutRepair())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := s.Check(context.Background(), oci.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	temps := 0
	for _, f := range rep.Findings {
		if f.Kind == oci.FindingTemp {
			temps++
			continue
		}
		t.Errorf("store %s: %s %s%s: %s", root, f.Kind, f.Path, f.Ref, f.Problem)
	}
	return temps
}

// tags returns the store's tags.
func tags(t testing.TB, root string) map[string]string {
	t.Helper()
	s, err := oci.Open(root, oci.WithoutRepair())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := s.Index(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range idx.Manifests {
		if n := m.Annotations[oci.RefNameAnnotation]; n != "" {
			out[n] = m.Digest.String()
		}
	}
	return out
}

// asBB is set in the environment of the processes the tests start: the
// test binary then runs as bb (saves building bb for the tests).
const asBB = "BB_ADVERSARIAL_AS_BB"

// bbBinary returns the program to start as bb: this test binary.
func bbBinary(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// command is exec.Command for bb (see bbBinary).
func command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), asBB+"=1")
	return cmd
}

func TestMain(m *testing.M) {
	if os.Getenv(asBB) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := cli.New().ExecuteContext(ctx)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bb:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func decode(t testing.TB, s string, v any) {
	t.Helper()
	i := strings.Index(s, "{")
	if i < 0 {
		t.Fatalf("no JSON in %q", s)
	}
	if err := json.NewDecoder(strings.NewReader(s[i:])).Decode(v); err != nil && err != io.EOF {
		t.Fatalf("decoding %q: %v", s, err)
	}
}
