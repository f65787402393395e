package snapshot_test

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
)

// files is a snapshot.Source over a few generated files.
type files map[string]string

func (f files) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, c := range f {
		_ = tw.WriteHeader(&tar.Header{Name: "./" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c))})
		_, _ = tw.Write([]byte(c))
	}
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

func build(t *testing.T, s *oci.Store, slug, content string, now time.Time) *snapshot.Result {
	t.Helper()
	res, err := snapshot.Build(context.Background(), s, snapshot.Request{
		Slug: slug, Backend: "dir", SourceName: "test", Source: files{"f": content}, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTimeTagsAreUniqueAndValid(t *testing.T) {
	now := time.Now()
	slug := string(bytes.Repeat([]byte("s"), 100))
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		tag := snapshot.TimeTag(slug, now)
		if err := oci.ValidTag(tag); err != nil {
			t.Fatal(err)
		}
		seen[tag] = true
	}
	if len(seen) < 990 {
		t.Fatalf("%d distinct tags out of 1000 in one millisecond", len(seen))
	}
	a, b := snapshot.TimeTag("x", now), snapshot.TimeTag("x", now.Add(time.Millisecond))
	if a[:len(a)-5] >= b[:len(b)-5] {
		t.Fatalf("time tags do not sort by time: %s, %s", a, b)
	}
}

// Concurrent publishes of one slug in the same millisecond: every one
// stays reachable, and the slug's tag ends on the newest snapshot.
func TestConcurrentPublishKeepsEverySnapshot(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := oci.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Now().UTC().Truncate(time.Millisecond)
	const n = 16
	results := make([]*snapshot.Result, n)
	for i := range results {
		// Half share one millisecond; the others are older.
		results[i] = build(t, s, "one", fmt.Sprint(i), base.Add(-time.Duration(i%2)*time.Second))
	}
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s2, _ := oci.Open(root) // as another process would
			if err := snapshot.Publish(ctx, s2, results[i], -1); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	entries, err := snapshot.List(ctx, s, "one")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d history entries, want %d", len(entries), n)
	}
	cur, err := s.Resolve(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	created, _ := time.Parse(time.RFC3339Nano, cur.Annotations[oci.CreatedAnnotation])
	if !created.Equal(base) {
		t.Fatalf("current snapshot was created %s, want the newest (%s)", created, base)
	}
	for _, r := range results {
		if _, err := s.Resolve(ctx, r.TimeTag); err != nil {
			t.Fatalf("snapshot %s lost: %v", r.TimeTag, err)
		}
	}
}

// Pruning after a commit never takes a snapshot published while it was
// being built.
func TestPruneKeepsConcurrentSnapshots(t *testing.T) {
	ctx := context.Background()
	s, _ := oci.Open(t.TempDir())
	old := build(t, s, "p", "old", time.Now().Add(-time.Hour))
	if err := snapshot.Publish(ctx, s, old, -1); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mine := build(t, s, "p", "mine", now)
	// Another commit, started before mine, finishes while mine runs.
	other := build(t, s, "p", "other", now.Add(-time.Second))
	if err := snapshot.Publish(ctx, s, other, -1); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Publish(ctx, s, mine, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, old.TimeTag); err == nil {
		t.Fatal("--keep 0 kept a snapshot published before the commit")
	}
	if _, err := s.Resolve(ctx, other.TimeTag); err != nil {
		t.Fatalf("--keep 0 dropped a concurrent commit's snapshot: %v", err)
	}
}

// Unpublish gives the slug its previous snapshot back and removes the
// new one's blobs.
func TestUnpublishRestoresPrevious(t *testing.T) {
	ctx := context.Background()
	s, _ := oci.Open(t.TempDir())
	now := time.Now()
	prev := build(t, s, "u", "prev", now.Add(-time.Minute))
	if err := snapshot.Publish(ctx, s, prev, -1); err != nil {
		t.Fatal(err)
	}
	next := build(t, s, "u", "next", now)
	if err := snapshot.Publish(ctx, s, next, -1); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := snapshot.Unpublish(cancelled, s, next); err != nil {
		t.Fatal(err)
	}
	cur, err := s.Resolve(ctx, "u")
	if err != nil || cur.Digest != prev.Manifest.Digest {
		t.Fatalf("slug tag = %v, %v; want the previous snapshot %s", cur.Digest, err, prev.Manifest.Digest)
	}
	if _, err := s.Resolve(ctx, next.TimeTag); err == nil {
		t.Fatal("failed snapshot still tagged")
	}
	for _, h := range next.NewBlobs {
		if _, err := s.Stat(ctx, h); err == nil {
			t.Fatalf("blob %s of the failed snapshot left in the store", h)
		}
	}
	if err := s.Complete(ctx, cur); err != nil {
		t.Fatal(err)
	}
}
