package fileindex_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/fileindex"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]fileindex.Time{
		"1700000000.1234567890": {Sec: 1700000000, Nsec: 123456789},
		"1700000000.5":          {Sec: 1700000000, Nsec: 500000000},
		"1700000000":            {Sec: 1700000000},
		"-1.5":                  {Sec: -2, Nsec: 500000000},
	} {
		got, err := fileindex.ParseTime(in)
		if err != nil || got != want {
			t.Errorf("ParseTime(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "1.x", "1.-5"} {
		if _, err := fileindex.ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
}

// listing builds a listing from entries.
func listing(started time.Time, es ...fileindex.Entry) []byte {
	b := []byte(fileindex.Header(started))
	for i := range es {
		b = fileindex.AppendRecord(b, &es[i])
	}
	return b
}

func TestReaderRoundTripAndErrors(t *testing.T) {
	e := fileindex.Entry{Type: 'l', Mode: 0o777, UID: 1, GID: 2, Size: 3, Mtime: fileindex.Time{Sec: 4, Nsec: 5}, Ctime: fileindex.Time{Sec: 6}, Ino: 7, Nlink: 1, Path: "a b/\nc", Link: "../x y"}
	r, err := fileindex.NewReader(bytes.NewReader(listing(time.Unix(10, 0), e)))
	if err != nil {
		t.Fatal(err)
	}
	var got fileindex.Entry
	if err := r.Next(&got); err != nil || got != e {
		t.Fatalf("Next = %+v, %v; want %+v", got, err, e)
	}
	if err := r.Next(&got); err != io.EOF {
		t.Fatalf("at the end: %v", err)
	}
	for name, in := range map[string]string{
		"no header":    "f 644 0 0 1 1 1 1 1\x00a\x00\x00",
		"bad type":     fileindex.Header(time.Unix(1, 0)) + "x 644 0 0 1 1 1 1 1\x00a\x00\x00",
		"short record": fileindex.Header(time.Unix(1, 0)) + "f 644 0 0 1 1 1\x00a\x00\x00",
		"truncated":    fileindex.Header(time.Unix(1, 0)) + "f 644 0 0 1 1 1 1 1\x00a",
		"long path":    fileindex.Header(time.Unix(1, 0)) + "f 644 0 0 1 1 1 1 1\x00" + strings.Repeat("a", 70000) + "\x00\x00",
		"dot":          fileindex.Header(time.Unix(1, 0)) + "d 755 0 0 1 1 1 1 1\x00a/.\x00\x00",
		"dotdot":       fileindex.Header(time.Unix(1, 0)) + "f 644 0 0 1 1 1 1 1\x00a/../../b\x00\x00",
		"empty":        fileindex.Header(time.Unix(1, 0)) + "f 644 0 0 1 1 1 1 1\x00a//b\x00\x00",
		"trailing":     fileindex.Header(time.Unix(1, 0)) + "d 755 0 0 1 1 1 1 1\x00a/\x00\x00",
	} {
		r, err := fileindex.NewReader(strings.NewReader(in))
		if err == nil {
			for err == nil {
				err = r.Next(&got)
			}
		}
		if err == nil || err == io.EOF {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestDiffPlans(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(s int64) fileindex.Time { return fileindex.Time{Sec: s} }
	f := func(p string, ino uint64, size int64) fileindex.Entry {
		return fileindex.Entry{Type: 'f', Mode: 0o644, Size: size, Mtime: at(100), Ctime: at(100), Ino: ino, Nlink: 1, Path: p}
	}
	d := func(p string, ino uint64) fileindex.Entry {
		return fileindex.Entry{Type: 'd', Mode: 0o755, Mtime: at(100), Ctime: at(100), Ino: ino, Nlink: 2, Path: p}
	}
	old := listing(t0,
		d("a", 1), f("a/same", 2, 1), f("a/edit", 3, 1), f("a/gone", 4, 1),
		d("r", 5), f("r/x", 6, 1), d("r/sub", 7), f("r/sub/y", 8, 1),
		d("del", 9), f("del/z", 10, 1),
		d("tofile", 11), f("tofile/w", 12, 1),
		f("racy", 13, 1),
		f("h1", 14, 1), f("h2", 14, 1),
	)
	old = bytes.Replace(old, []byte("f 644 0 0 1 100.000000000 100.000000000 13 1"), []byte("f 644 0 0 1 100.000000000 999.500000000 13 1"), 1)
	edit := f("a/edit", 3, 1)
	edit.Ctime = at(200)
	h1 := f("h1", 14, 1)
	h1.Ctime, h1.Nlink = at(200), 2
	h2 := h1
	h2.Path = "h2"
	aDir := d("a", 1)
	aDir.Ctime = at(200)
	cur := listing(t0.Add(time.Hour),
		aDir, f("a/same", 2, 1), edit, f("a/new", 20, 5),
		d("r", 21), f("r/x", 6, 1), // r made again: everything below is sent
		f("tofile", 22, 3),
		f("racy", 13, 1),
		h1, h2,
	)
	var changes []string
	plan, err := fileindex.Diff(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(old)), nil },
		bytes.NewReader(cur), fileindex.Options{Report: func(c fileindex.Change) { changes = append(changes, string(c.Kind)+" "+c.Path) }})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{"a", "a/edit", "a/new", "r", "r/x", "tofile", "racy", "h1", "h2"}
	if !slices.Equal(plan.Paths, wantPaths) {
		t.Errorf("Paths = %q, want %q", plan.Paths, wantPaths)
	}
	if want := []string{"tofile", "a/gone", "del"}; !slices.Equal(plan.Whiteouts, want) {
		t.Errorf("Whiteouts = %q, want %q", plan.Whiteouts, want)
	}
	if want := []string{"r"}; !slices.Equal(plan.Opaque, want) {
		t.Errorf("Opaque = %q, want %q", plan.Opaque, want)
	}
	if plan.Added != 1 || plan.Changed != 8 || plan.Deleted != 6 || plan.Entries != 10 {
		t.Errorf("plan %+v; changes %q", plan, changes)
	}
	// hard links follow a changed file even when listed unchanged
	cur2 := listing(t0.Add(time.Hour), f("x", 30, 1), fileindex.Entry{Type: 'f', Mode: 0o644, Size: 1, Mtime: at(100), Ctime: at(300), Ino: 40, Nlink: 2, Path: "l1"},
		fileindex.Entry{Type: 'f', Mode: 0o644, Size: 1, Mtime: at(100), Ctime: at(300), Ino: 40, Nlink: 2, Path: "l2"})
	old2 := listing(t0, f("x", 30, 1), fileindex.Entry{Type: 'f', Mode: 0o644, Size: 1, Mtime: at(100), Ctime: at(300), Ino: 40, Nlink: 2, Path: "l2"})
	plan, err = fileindex.Diff(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(old2)), nil }, bytes.NewReader(cur2), fileindex.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"l1", "l2"}; !slices.Equal(plan.Paths, want) {
		t.Errorf("hard link group: Paths = %q, want %q", plan.Paths, want)
	}
}

func TestWalkMatchesFind(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b"), 0o750))
	must(os.WriteFile(filepath.Join(dir, "a/b/f"), []byte("x"), 0o640))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "a/l")))
	must(os.MkdirAll(filepath.Join(dir, "proc/1"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "hosts"), nil, 0o644))
	var w bytes.Buffer
	must(fileindex.Walk(context.Background(), dir, fileindex.WalkOptions{Excludes: []string{"proc", "hosts"}}, &w))
	r, err := fileindex.NewReader(&w)
	must(err)
	var got []string
	var e fileindex.Entry
	for err = r.Next(&e); err == nil; err = r.Next(&e) {
		got = append(got, string(e.Type)+" "+e.Path+" "+e.Link)
	}
	want := []string{"d a ", "d a/b ", "f a/b/f ", "l a/l /etc/passwd", "d proc "}
	if !slices.Equal(got, want) {
		t.Fatalf("Walk = %q, want %q", got, want)
	}
	if !strings.Contains(fileindex.FindScript([]string{"proc"}, true), "-xdev") {
		t.Error("FindScript ignores oneFS")
	}
}
