package layer

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

func sha(b []byte) v1.Hash {
	s := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(s[:])}
}

// feed writes b in odd-sized pieces, as a copy loop would.
func feed(w io.Writer, b []byte) {
	for len(b) > 0 {
		n := min(len(b), 3+len(b)%7919)
		w.Write(b[:n])
		b = b[n:]
	}
}

func TestDiffIDWriter(t *testing.T) {
	raw := bytes.Repeat([]byte("tar bytes of a layer "), 50000)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	enc, _ := zstd.NewWriter(nil)
	zs := enc.EncodeAll(raw, nil)
	for _, tc := range []struct {
		name string
		blob []byte
		kind Compression
		mt   types.MediaType
	}{
		{"none", raw, None, types.OCIUncompressedLayer},
		{"gzip", gz.Bytes(), Gzip, types.OCILayer},
		{"zstd", zs, Zstd, types.OCILayerZStd},
		{"tiny", []byte("ab"), None, types.DockerUncompressedLayer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := NewDiffIDWriter()
			feed(w, tc.blob)
			kind, diff, err := w.Finish(sha(tc.blob))
			if err != nil || kind != tc.kind {
				t.Fatalf("Finish: %s %v, want %s", kind, err, tc.kind)
			}
			want := sha(raw)
			if tc.name == "tiny" {
				want = sha(tc.blob)
			}
			if diff != want {
				t.Fatalf("diffID %s, want %s", diff, want)
			}
			if err := CheckDiffID(tc.mt, kind, diff, err, want); err != nil {
				t.Fatal(err)
			}
			if err := CheckDiffID(tc.mt, kind, diff, err, sha([]byte("other"))); err == nil {
				t.Fatal("a wrong diff_id passed")
			}
			w.Close() // no-op after Finish
		})
	}
	t.Run("wrong media type", func(t *testing.T) {
		w := NewDiffIDWriter()
		feed(w, gz.Bytes())
		kind, diff, err := w.Finish(sha(gz.Bytes()))
		if err := CheckDiffID(types.OCILayerZStd, kind, diff, err, sha(raw)); err == nil {
			t.Fatal("a gzip blob passed as zstd")
		}
	})
	t.Run("damaged", func(t *testing.T) {
		bad := append([]byte{}, gz.Bytes()...)
		bad[len(bad)/2] ^= 0xff
		for _, b := range [][]byte{bad, gz.Bytes()[:len(gz.Bytes())/2], append(append([]byte{}, gz.Bytes()...), "trailing"...), zs[:len(zs)-5]} {
			w := NewDiffIDWriter()
			feed(w, b)
			if _, _, err := w.Finish(sha(b)); err == nil {
				t.Errorf("a damaged stream (%d bytes) passed", len(b))
			}
		}
	})
	t.Run("abort", func(t *testing.T) {
		before := runtime.NumGoroutine()
		for range 20 {
			w := NewDiffIDWriter()
			w.Write(gz.Bytes()[:1000])
			w.Close()
		}
		// A decoder's goroutine ends just after Close returns: wait for
		// that (longer on a loaded machine) rather than a fixed time.
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if after := runtime.NumGoroutine(); after > before+2 {
			t.Fatalf("goroutines: %d before, %d after aborted computations", before, after)
		}
	})
}

// TestDiffIDWriterBomb feeds a gzip bomb (128 MiB of zeros in ~130 KiB,
// one gzip member repeated): the diffID comes out without the expansion
// ever being held in memory.
func TestDiffIDWriterBomb(t *testing.T) {
	var member bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&member, gzip.BestCompression)
	zero := make([]byte, 1<<20)
	zw.Write(zero)
	zw.Close()
	var gz bytes.Buffer
	h := sha256.New()
	for range 128 {
		gz.Write(member.Bytes())
		h.Write(zero)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	w := NewDiffIDWriter()
	feed(w, gz.Bytes())
	_, diff, err := w.Finish(sha(gz.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if diff.Hex != hex.EncodeToString(h.Sum(nil)) {
		t.Fatal("wrong diffID")
	}
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > before+24<<20 {
		t.Fatalf("heap grew by %d MiB", (ms.HeapAlloc-before)>>20)
	}
}
