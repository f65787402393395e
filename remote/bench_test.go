package remote_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/testregistry"
	"github.com/bot-bottle/bb/remote"
)

// benchSize is the layer size of the push benchmarks: $BB_BENCH_SIZE
// bytes, default 64 MiB.
func benchSize(b *testing.B) int {
	if s := os.Getenv("BB_BENCH_SIZE"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatalf("BB_BENCH_SIZE: %v", err)
		}
		return n
	}
	return 64 << 20
}

// BenchmarkPush pushes one snapshot to a fresh docker-registry per
// iteration, in 32 MiB chunks and in one request, next to the same
// layer sent with a bare POST + PUT (what curl -T does).
func BenchmarkPush(b *testing.B) {
	size := benchSize(b)
	s := makeSnapshotB(b, "bench", size)
	for _, tc := range []struct {
		name  string
		chunk int64
	}{{"chunks-32MiB", remote.DefaultChunkSize}, {"one-request", 1 << 40}} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(s.layer.Size)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				reg := testregistry.Start(b, testregistry.Options{})
				b.StartTimer()
				if _, err := remote.Push(context.Background(), s.store, s.desc, reg.Repo("bench"), remote.Options{Keychain: anonymous, ChunkSize: tc.chunk}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				reg.Stop()
				b.StartTimer()
			}
		})
	}
	b.Run("raw-put", func(b *testing.B) {
		b.SetBytes(s.layer.Size)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			reg := testregistry.Start(b, testregistry.Options{})
			c := reg.Client()
			resp, err := c.Post(reg.URL+"/v2/raw/blobs/uploads/", "", nil)
			if err != nil || resp.StatusCode != http.StatusAccepted {
				b.Fatalf("POST: %v %v", err, resp)
			}
			resp.Body.Close()
			f, err := s.store.Blob(context.Background(), s.layer.Digest)
			if err != nil {
				b.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s&digest=%s", resp.Header.Get("Location"), s.layer.Digest), f)
			req.ContentLength = s.layer.Size
			req.Header.Set("Content-Type", "application/octet-stream")
			b.StartTimer()
			resp, err = c.Do(req)
			if err != nil || resp.StatusCode != http.StatusCreated {
				b.Fatalf("PUT: %v %v", err, resp)
			}
			b.StopTimer()
			resp.Body.Close()
			reg.Stop()
			b.StartTimer()
		}
	})
}
