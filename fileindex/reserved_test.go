package fileindex_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/fileindex"
)

// Entries named like whiteouts (and what is below a directory so named)
// are in no snapshot: Diff leaves them out of both listings, so they are
// never streamed, whited out or reported, and counts the newer
// listing's.
func TestDiffLeavesOutReservedNames(t *testing.T) {
	at := fileindex.Time{Sec: 1000}
	e := func(typ byte, p string, size int64, ino uint64) fileindex.Entry {
		return fileindex.Entry{Type: typ, Mode: 0o644, Size: size, Mtime: at, Ctime: at, Ino: ino, Nlink: 1, Path: p}
	}
	old := listing(time.Unix(5000, 0),
		e('d', "w", 0, 1), e('f', "w/foo", 1, 2), e('f', "w/.wh.gone", 1, 3),
		e('d', "w/.wh.dir", 0, 4), e('f', "w/.wh.dir/x", 1, 5))
	cur := listing(time.Unix(6000, 0),
		e('d', "w", 0, 1), e('f', "w/foo", 1, 2), e('f', "w/.wh.foo", 9, 6),
		e('f', "w/.wh..wh..opq", 1, 7), e('d', "w/.wh.dir", 0, 8), e('f', "w/.wh.dir/y", 1, 9))
	var changes []string
	plan, err := fileindex.Diff(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(old)), nil },
		bytes.NewReader(cur), fileindex.Options{Report: func(c fileindex.Change) { changes = append(changes, c.Path) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Paths)+len(plan.Whiteouts)+len(plan.Opaque)+len(changes) != 0 || plan.Added+plan.Changed+plan.Deleted != 0 {
		t.Errorf("plan %+v, changes %q: want nothing to do", plan, changes)
	}
	if plan.Entries != 2 || plan.Reserved != 4 || strings.Join(plan.ReservedPaths, " ") != "w/.wh.foo w/.wh..wh..opq w/.wh.dir w/.wh.dir/y" {
		t.Errorf("entries %d, reserved %d %q", plan.Entries, plan.Reserved, plan.ReservedPaths)
	}
}
