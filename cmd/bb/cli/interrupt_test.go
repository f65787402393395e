package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/testregistry"
)

// TestChildBB runs bb as cmd/bb's main does (Ctrl-C and SIGTERM cancel
// the context), with the arguments in BB_TEST_CHILD_ARGS (JSON), for
// tests that signal a real bb process.
func TestChildBB(t *testing.T) {
	raw := os.Getenv("BB_TEST_CHILD_ARGS")
	if raw == "" {
		t.Skip("run by tests that interrupt bb")
	}
	var args []string
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); stop() }()
	cmd := cli.New()
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("bb: %v", err)
	}
}

// uploadBytes is what the registry holds of unfinished uploads.
func uploadBytes(root string) int64 {
	var n int64
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == "data" && strings.Contains(p, "_uploads") {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// A bb push interrupted with SIGINT mid-upload against Debian's
// docker-registry (distribution 2.8) ends the chunk in flight and saves
// where the upload stands; the next push asks the registry, continues
// from there, and the pulled snapshot is the pushed one.
func TestPushResumesAfterSIGINT(t *testing.T) {
	t.Parallel()
	reg := testregistry.Start(t, testregistry.Options{})
	const size, chunk = 48 << 20, 1 << 20
	src := t.TempDir()
	b := make([]byte, size)
	rand.New(rand.NewSource(7)).Read(b)
	if err := os.WriteFile(filepath.Join(src, "big.bin"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	mustRunBB(t, "--home", home, "commit", "--from-dir", src, "--slug", "interop-intr")
	ref := reg.Repo("interopintr:v1")
	args, _ := json.Marshal([]string{"--home", home, "push", "interop-intr", ref, "--chunk-size", "1048576"})
	child := exec.Command(os.Args[0], "-test.run=^TestChildBB$", "-test.count=1")
	child.Env = append(os.Environ(), "BB_TEST_CHILD_ARGS="+string(args))
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for uploadBytes(reg.StorageDir) < size/3 {
		if time.Now().After(deadline) {
			_ = child.Process.Kill()
			t.Fatalf("the push did not get a third of the way in 60 s:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := child.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := child.Wait(); err == nil {
		t.Fatalf("the interrupted push exited 0:\n%s", out.String())
	}
	held := uploadBytes(reg.StorageDir)
	if held%chunk != 0 || held >= size {
		t.Fatalf("the registry holds %d bytes after the interrupt, want whole chunks of %d, less than %d\n%s", held, chunk, size, out.String())
	}

	var res struct {
		Sent  int64 `json:"sent"`
		Blobs []struct {
			Status    string `json:"status"`
			Size      int64  `json:"size"`
			Bytes     int64  `json:"bytes"`
			ResumedAt int64  `json:"resumedAt"`
			Restarts  int    `json:"restarts"`
		} `json:"blobs"`
		Digest string `json:"digest"`
	}
	o := mustRunBB(t, "--home", home, "push", "interop-intr", ref, "--chunk-size", "1048576", "--json")
	if err := json.Unmarshal([]byte(o), &res); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	resumed := false
	for _, bl := range res.Blobs {
		if bl.Size > size/2 {
			resumed = bl.Status == "resumed" && bl.ResumedAt == held && bl.Bytes == bl.Size-held && bl.Restarts == 0
			t.Logf("layer: %+v", bl)
		}
	}
	if !resumed {
		t.Fatalf("the push after the interrupt did not resume at %d: %s", held, o)
	}
	home2 := t.TempDir()
	o = mustRunBB(t, "--home", home2, "pull", ref, "--as", "interop-intr2", "--json")
	if !strings.Contains(o, res.Digest) {
		t.Fatalf("pulled %s, pushed %s", o, res.Digest)
	}
}
