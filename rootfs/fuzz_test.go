package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// seedLayers are the hostile cases as single tars (the layers of a case
// concatenated), with links out of the root relative to the target.
func seedLayers(t testing.TB) map[string][]byte {
	out := map[string][]byte{}
	for name, c := range hostileCases() {
		var all []*tar.Header
		for _, l := range c.layers {
			all = append(all, resolveOut(l, "../outside")...)
		}
		out[name] = tarOf(t, all)
	}
	return out
}

// FuzzExtract feeds arbitrary tar streams to Extract and checks, after
// each one, that nothing outside the target directory changed (an
// oracle that walks the parent directory and shares no code with
// Extract).
func FuzzExtract(f *testing.F) {
	seeds := seedLayers(f)
	names := make([]string, 0, len(seeds))
	for n := range seeds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f.Add(seeds[n])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		base, target, _ := fixture(t)
		before := snapshotFS(t, base, target)
		// A sparse entry may claim terabytes of zeros: extracting them
		// (as holes) takes time, not disk. The invariant checked is
		// where Extract writes, so a slow input is cut short.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = Extract(ctx, bytes.NewReader(b), target, Options{NoChown: true})
		if d := diffFS(before, snapshotFS(t, base, target)); len(d) > 0 {
			t.Fatalf("extraction changed things outside its root:\n%s", strings.Join(d, "\n"))
		}
	})
}

// TestWriteFuzzCorpus rewrites testdata/fuzz/FuzzExtract from the
// hostile cases when BB_WRITE_FUZZ_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("BB_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set BB_WRITE_FUZZ_CORPUS=1 to rewrite the checked-in seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzExtract")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seedLayers(t) {
		file := strings.NewReplacer(" ", "-", "/", "-", ",", "", ">", "").Replace(name)
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+file), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
