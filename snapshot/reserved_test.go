package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// The filter keeps only the whiteouts that carry the snapshot's mark;
// every other entry named like a whiteout (or below a directory so named)
// is a file of the bottle: left out, counted, named.
func TestFilterReservedNames(t *testing.T) {
	const mark = "s3cret"
	m := map[string]string{WhiteoutMarkRecord: mark}
	forged := map[string]string{WhiteoutMarkRecord: "guess"}
	in := mkTar(t, []ent{
		{name: "work/", typ: tar.TypeDir},
		{name: "work/foo", typ: tar.TypeReg, body: "foo"},
		{name: "work/.wh.foo", typ: tar.TypeReg, body: "a file of the bottle"},
		{name: "work/.wh..wh..opq", typ: tar.TypeReg},
		{name: "work/.wh.dir/", typ: tar.TypeDir},
		{name: "work/.wh.dir/inner", typ: tar.TypeReg, body: "x"},
		{name: "work/.wh.forged", typ: tar.TypeReg, pax: forged},
		{name: "work/.wh.gone", typ: tar.TypeReg, pax: m},                 // ours: kept
		{name: "work/sub/.wh..wh..opq", typ: tar.TypeReg, pax: m},         // ours: kept
		{name: "work/.wh.dir2/.wh.x", typ: tar.TypeReg, pax: m},           // ours, below a reserved name: dropped
		{name: "work/.wh..wh.x", typ: tar.TypeReg, pax: m},                // ours, hiding a reserved name: dropped
		{name: "work/.wh.sym", typ: tar.TypeSymlink, link: "foo", pax: m}, // ours, not a whiteout: dropped
		{name: "work/link", typ: tar.TypeLink, link: "work/.wh.foo"},
		{name: "work/plain", typ: tar.TypeReg, body: "p", pax: m}, // the mark goes
	})
	var out bytes.Buffer
	var warns []string
	st, err := Filter(bytes.NewReader(in), &out, FilterOptions{WhiteoutMark: mark, Warn: func(s string) { warns = append(warns, s) }})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := h.PAXRecords[WhiteoutMarkRecord]; ok {
			t.Errorf("%s keeps the mark", h.Name)
		}
		names = append(names, h.Name)
	}
	if got, want := strings.Join(names, " "), "work/ work/foo work/.wh.gone work/sub/.wh..wh..opq work/plain"; got != want {
		t.Errorf("kept %s\nwant %s", got, want)
	}
	wantRes := "work/.wh.foo work/.wh..wh..opq work/.wh.dir work/.wh.dir/inner work/.wh.forged"
	if st.Reserved != 5 || strings.Join(st.ReservedPaths, " ") != wantRes {
		t.Errorf("reserved %d %q, want 5 %q", st.Reserved, st.ReservedPaths, wantRes)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "work/link") {
		t.Errorf("warnings %q: want one for the hard link to a left-out file", warns)
	}
	w := ReservedWarning(st)
	if !strings.Contains(w, "left out 5 entries") || !strings.Contains(w, "work/.wh.foo") {
		t.Errorf("warning %q", w)
	}
	// Without a mark nothing named like a whiteout passes.
	out.Reset()
	st, err = Filter(bytes.NewReader(in), &out, FilterOptions{})
	if err != nil || st.Reserved != 10 {
		t.Fatalf("no mark: %d reserved, %v", st.Reserved, err)
	}
}

// The list of paths is bounded; the warning says how many more.
func TestReservedWarningBounded(t *testing.T) {
	var ents []ent
	for i := range 25 {
		ents = append(ents, ent{name: fmt.Sprintf(".wh.f%02d", i), typ: tar.TypeReg})
	}
	st, err := Filter(bytes.NewReader(mkTar(t, ents)), io.Discard, FilterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Reserved != 25 || len(st.ReservedPaths) != MaxReservedPaths {
		t.Fatalf("%d reserved, %d paths", st.Reserved, len(st.ReservedPaths))
	}
	if w := ReservedWarning(st); !strings.Contains(w, "and 15 more") {
		t.Errorf("warning %q", w)
	}
}

// A reserved name where the filter would not take the entry anyway is
// not reported: below an excluded directory it is left out silently, and
// a path with ".." still fails the stream.
func TestFilterReservedAfterOtherChecks(t *testing.T) {
	in := mkTar(t, []ent{
		{name: "tmp/", typ: tar.TypeDir},
		{name: "tmp/.wh.scratch", typ: tar.TypeReg, body: "x"},
		{name: "work/.wh.kept", typ: tar.TypeReg, body: "y"},
	})
	st, err := Filter(bytes.NewReader(in), io.Discard, FilterOptions{Excludes: []string{"tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Reserved != 1 || strings.Join(st.ReservedPaths, " ") != "work/.wh.kept" {
		t.Errorf("reserved %d %q, want only work/.wh.kept", st.Reserved, st.ReservedPaths)
	}
	in = mkTar(t, []ent{{name: "../.wh.out", typ: tar.TypeReg, body: "z"}})
	var ee *EntryError
	if _, err := Filter(bytes.NewReader(in), io.Discard, FilterOptions{}); !errors.As(err, &ee) {
		t.Errorf("a reserved name with \"..\": %v, want an EntryError", err)
	}
}
