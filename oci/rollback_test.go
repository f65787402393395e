package oci

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Writer A stores X, writer B (another process) reuses X, A rolls back:
// X stays for B.
func TestDiscardKeepsBlobReusedSince(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	a, _ := Open(root)
	b, _ := Open(root)
	x := []byte("shared blob")
	h, _, _ := v1.SHA256(bytes.NewReader(x))
	if _, _, err := a.Ingest(ctx, bytes.NewReader(x), h, int64(len(x))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Millisecond)
	if _, _, err := b.Ingest(ctx, bytes.NewReader(x), h, int64(len(x))); err != nil {
		t.Fatal(err)
	}
	if err := a.Discard(ctx, []v1.Hash{h}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, h); err != nil {
		t.Fatalf("rollback removed a blob another writer reused: %v", err)
	}
}

// A rollback removes only what this writer created, even with a
// cancelled context.
func TestDiscardCancelledAndForeign(t *testing.T) {
	root := t.TempDir()
	a, _ := Open(root)
	b, _ := Open(root)
	ctx, cancel := context.WithCancel(context.Background())
	d, err := a.PutBytes(ctx, types.OCIConfigJSON, []byte(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := b.PutBytes(ctx, types.OCIConfigJSON, []byte(`{"b":1}`))
	cancel()
	if err := a.Discard(ctx, []v1.Hash{d.Digest, foreign.Digest}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Stat(context.Background(), d.Digest); !errors.Is(err, ErrNotFound) {
		t.Fatalf("cancelled rollback left the blob: %v", err)
	}
	if _, err := a.Stat(context.Background(), foreign.Digest); err != nil {
		t.Fatalf("rollback removed a blob another writer created: %v", err)
	}
}

func TestTrackRollback(t *testing.T) {
	ctx := context.Background()
	s, _ := Open(t.TempDir())
	old, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte(`old`))
	v, added := s.Track()
	n1, _ := v.PutBytes(ctx, types.OCIConfigJSON, []byte(`new`))
	if _, err := v.PutBytes(ctx, types.OCIConfigJSON, []byte(`old`)); err != nil {
		t.Fatal(err)
	}
	if got := added.Blobs(); len(got) != 1 || got[0] != n1.Digest {
		t.Fatalf("tracked %v, want only %s", got, n1.Digest)
	}
	if err := added.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, n1.Digest); err == nil {
		t.Fatal("rollback left the new blob")
	}
	if _, err := s.Stat(ctx, old.Digest); err != nil {
		t.Fatal("rollback removed a blob that was there before")
	}
}

func TestStaleTempsGoAtNextWriteAndGC(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, _ := Open(root)
	old := time.Now().Add(-2 * TempGrace)
	_ = os.MkdirAll(filepath.Join(root, "remote"), 0o700)
	stale := []string{filepath.Join(root, ingestDir, "blob-123"), filepath.Join(root, ".index.json.tmp-9"), filepath.Join(root, "remote", ".blobs.json.tmp-3")}
	fresh := filepath.Join(root, ingestDir, "blob-456")
	for _, p := range append(stale, fresh) {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range stale {
		_ = os.Chtimes(p, old, old)
	}
	s2, _ := Open(root)
	if _, err := s2.PutBytes(ctx, types.OCIConfigJSON, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("stale %s survived a write", p)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a live temp file was removed")
	}
	_ = os.Chtimes(fresh, old, old)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Fatal("stale temp file survived gc")
	}
}

func TestPrivateWhateverTheUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "store")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := s.PutBytes(ctx, types.OCIConfigJSON, []byte(`{}`))
	if err := s.Tag(ctx, "x", d); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for _, p := range []string{root, filepath.Join(root, "blobs"), filepath.Join(root, "blobs", "sha256"), filepath.Join(root, ingestDir)} {
			if fi, _ := os.Stat(p); fi.Mode().Perm() != DirMode {
				t.Errorf("%s is %v", p, fi.Mode().Perm())
			}
		}
		for _, p := range []string{indexFile, layoutFile, lockFile} {
			if fi, _ := os.Stat(filepath.Join(root, p)); fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is %v", p, fi.Mode().Perm())
			}
		}
		if fi, _ := os.Stat(s.BlobPath(d.Digest)); fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("blob is %v", fi.Mode().Perm())
		}
	}
	check()
	// A store made by an older bb under umask 022 is tightened on Open.
	for _, p := range []string{root, filepath.Join(root, ingestDir)} {
		_ = os.Chmod(p, 0o755)
	}
	_ = os.Chmod(filepath.Join(root, indexFile), 0o644)
	var log bytes.Buffer
	if _, err := Open(root, WithLogger(newTextLogger(&log))); err != nil {
		t.Fatal(err)
	}
	check()
	if !bytes.Contains(log.Bytes(), []byte("made private")) {
		t.Fatalf("no notice of the tightening: %q", log.String())
	}
}

func newTextLogger(w *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
