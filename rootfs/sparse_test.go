package rootfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWriteSparseKeepsHoles(t *testing.T) {
	var want []byte
	want = append(want, make([]byte, 3<<20)...) // whole zero buffers
	want = append(want, bytes.Repeat([]byte("d"), 5000)...)
	want = append(want, make([]byte, 600<<10)...)
	want = append(want, bytes.Repeat([]byte("e"), 4096)...)
	want = append(want, make([]byte, 1<<20)...) // ends with a hole
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := writeSparse(context.Background(), f, bytes.NewReader(want))
	if err != nil || n != int64(len(want)) {
		t.Fatalf("writeSparse: %d, %v", n, err)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("content differs (%d bytes, want %d): %v", len(got), len(want), err)
	}
	fi, _ := f.Stat()
	if b := fi.Sys().(*syscall.Stat_t).Blocks * 512; b > 64<<10 {
		t.Fatalf("%d bytes on disk for 13 KiB of data", b)
	}
}
