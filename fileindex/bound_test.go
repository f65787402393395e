package fileindex_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/bot-bottle/bb/fileindex"
)

// A listing comes from the bottle: what the comparison holds is bounded
// whatever it claims (entries of the older listing, changed, hard-linked
// or deleted paths). Past the bound Diff still reads the newer listing to
// its end, counting, and says what reached the bound.
func TestDiffIsBounded(t *testing.T) {
	t0 := time.Unix(1000, 0)
	file := func(p string, ino uint64, nlink uint64, size int64) fileindex.Entry {
		return fileindex.Entry{Type: 'f', Mode: 0o644, Size: size, Mtime: fileindex.Time{Sec: 100}, Ctime: fileindex.Time{Sec: 100}, Ino: ino, Nlink: nlink, Path: p}
	}
	many := func(n int, nlink uint64, size int64) []fileindex.Entry {
		es := make([]fileindex.Entry, n)
		for i := range es {
			es[i] = file(fmt.Sprintf("d/%06d-%s", i, bytes.Repeat([]byte("x"), 100)), uint64(i+10), nlink, size)
		}
		return es
	}
	small := []fileindex.Entry{file("f", 2, 1, 1)}
	for _, c := range []struct {
		name     string
		old, cur []fileindex.Entry
		what     string
	}{
		{"old listing", many(5000, 1, 1), small, "file index lists"},
		{"changed paths", small, many(5000, 1, 1), "changed paths"},
		{"hard links", small, many(5000, 2, 1), "paths"},
		{"deleted paths", many(3000, 1, 1), small, "deleted paths"},
	} {
		t.Run(c.name, func(t *testing.T) {
			old, cur := listing(t0, c.old...), listing(t0.Add(time.Hour), c.cur...)
			open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(old)), nil }
			max := int64(150_000)
			if c.name == "deleted paths" {
				max = 3000*32 + 100_000
			}
			r := bytes.NewReader(cur)
			plan, err := fileindex.Diff(context.Background(), open, r, fileindex.Options{MaxMemory: max})
			var big *fileindex.TooLargeError
			if !errors.As(err, &big) {
				t.Fatalf("Diff = %v, want a TooLargeError", err)
			}
			if !bytes.Contains([]byte(big.What), []byte(c.what)) || big.Max != max {
				t.Errorf("error %q, want it to name %q and the bound", err, c.what)
			}
			if plan == nil || plan.Entries != len(c.cur) || len(plan.Paths)+len(plan.Whiteouts)+len(plan.Opaque) != 0 {
				t.Errorf("plan %+v: want every entry counted and no paths", plan)
			}
			if r.Len() != 0 {
				t.Errorf("%d bytes of the newer listing left unread", r.Len())
			}
			// Under the default bound the same comparison plans.
			if _, err := fileindex.Diff(context.Background(), open, bytes.NewReader(cur), fileindex.Options{}); err != nil {
				t.Errorf("default bound: %v", err)
			}
		})
	}
}
