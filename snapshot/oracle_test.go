package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// The oracle for Filter shares no code with it: it extracts the filtered
// stream the way a plain extractor does (parents resolved through
// symlinks, the last component replaced), confined by an os.Root opened
// on the parent of the target, and then compares everything outside the
// target with what was there before. A path escape that os.Root stopped
// counts as a failure too: a reader without os.Root would have followed it.

type oracleDirs struct{ base, target, outside string }

func newOracleDirs(t testing.TB) oracleDirs {
	t.Helper()
	base := t.TempDir()
	d := oracleDirs{base: base, target: filepath.Join(base, "target"), outside: filepath.Join(base, "outside")}
	for _, p := range []string{d.target, filepath.Join(d.outside, "vdir")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(d.outside, "victim"), []byte("victim"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func walkOutside(t testing.TB, d oracleDirs) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(d.base, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == d.target {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var errEscape = errors.New("the stream leads a plain extractor out of its root")

// plainExtract extracts stream into base/target as a plain extractor
// would, confined to base.
func plainExtract(base string, stream []byte) error {
	r, err := os.OpenRoot(base)
	if err != nil {
		return err
	}
	defer r.Close()
	tr := tar.NewReader(bytes.NewReader(stream))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Join("target", h.Name)
		err = plainEntry(r, tr, h, name)
		if err != nil && strings.Contains(err.Error(), "escapes") {
			return fmt.Errorf("%w: %q: %v", errEscape, h.Name, err)
		}
	}
}

func plainEntry(r *os.Root, tr *tar.Reader, h *tar.Header, name string) error {
	if err := r.MkdirAll(path.Dir(name), 0o755); err != nil {
		return err
	}
	if fi, err := r.Lstat(name); err == nil && !(fi.IsDir() && h.Typeflag == tar.TypeDir) {
		if err := r.RemoveAll(name); err != nil {
			return err
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return r.MkdirAll(name, 0o755)
	case tar.TypeSymlink:
		return r.Symlink(h.Linkname, name)
	case tar.TypeLink:
		return r.Link(path.Join("target", h.Linkname), name)
	default:
		f, err := r.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, tr)
		f.Close()
		return err
	}
}

// checkFiltered filters in and, if the filter passes it, checks the
// result with the oracle in d (its target is emptied first).
func checkFiltered(t *testing.T, d oracleDirs, in []byte) (passed bool) {
	t.Helper()
	var out bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{Excludes: DefaultExcludes}); err != nil {
		return false
	}
	if err := os.RemoveAll(d.target); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(d.target, 0o755); err != nil {
		t.Fatal(err)
	}
	before := walkOutside(t, d)
	err := plainExtract(d.base, out.Bytes())
	if errors.Is(err, errEscape) {
		t.Fatalf("filter passed an escaping stream: %v", err)
	}
	after := walkOutside(t, d)
	var diff []string
	for k, v := range before {
		if after[k] != v {
			diff = append(diff, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			diff = append(diff, "new "+k)
		}
	}
	if len(diff) > 0 {
		sort.Strings(diff)
		t.Fatalf("filter passed a stream that writes outside the root:\n%s", strings.Join(diff, "\n"))
	}
	return true
}

// oraclePool is the entries combined by TestFilterOracle: symlinks
// (relative, absolute, inside), hard links to them and to links,
// directories and files with the same names, and entries below them.
func oraclePool(outside string) []ent {
	return []ent{
		{name: "a", typ: tar.TypeSymlink, link: "../outside"},
		{name: "a", typ: tar.TypeSymlink, link: outside},
		{name: "a", typ: tar.TypeSymlink, link: "b"},
		{name: "b", typ: tar.TypeSymlink, link: "../outside"},
		{name: "h", typ: tar.TypeLink, link: "a"},
		{name: "h2", typ: tar.TypeLink, link: "h"},
		{name: "a/", typ: tar.TypeDir},
		{name: "a", typ: tar.TypeReg, body: "x"},
		{name: "a/victim", typ: tar.TypeReg, body: "pwned"},
		{name: "h/victim", typ: tar.TypeReg, body: "pwned"},
		{name: "h2/pwned", typ: tar.TypeReg, body: "pwned"},
		{name: "h/d/", typ: tar.TypeDir},
		{name: "a/s", typ: tar.TypeSymlink, link: "x"},
		{name: "b/l", typ: tar.TypeLink, link: "a"},
	}
}

// TestFilterOracle runs every sequence of up to two entries of the pool,
// and of three with a hard link first or second and ending below a
// name, through the filter and the oracle.
func TestFilterOracle(t *testing.T) {
	d := newOracleDirs(t)
	pool := oraclePool(d.outside)
	passed, total := 0, 0
	var seq func(prefix []ent)
	seq = func(prefix []ent) {
		if len(prefix) > 0 {
			total++
			if !checkFiltered(t, d, mkTar(t, prefix)) {
				return // refused: so is every longer stream with this start
			}
			passed++
		}
		if len(prefix) == 3 {
			return
		}
		for _, e := range pool {
			// Third entries: only below another name, after a hard link.
			if len(prefix) == 2 && (!strings.Contains(strings.TrimSuffix(e.name, "/"), "/") ||
				prefix[0].typ != tar.TypeLink && prefix[1].typ != tar.TypeLink) {
				continue
			}
			seq(append(append([]ent{}, prefix...), e))
		}
	}
	seq(nil)
	t.Logf("%d streams, %d passed the filter, none escaped", total, passed)
}

// The case: a hard link to a symlink, then an entry below it.
func TestFilterRefusesBelowHardLinkToSymlink(t *testing.T) {
	for name, ents := range map[string][]ent{
		"link to symlink":    {{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "h", typ: tar.TypeLink, link: "l"}, {name: "h/pwned", typ: tar.TypeReg, body: "x"}},
		"link to link":       {{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "h", typ: tar.TypeLink, link: "l"}, {name: "h2", typ: tar.TypeLink, link: "./h"}, {name: "h2/x/y", typ: tar.TypeDir}},
		"link, then symlink": {{name: "d/l", typ: tar.TypeSymlink, link: "../.."}, {name: "d/h", typ: tar.TypeLink, link: "/d/l"}, {name: "d/h/x", typ: tar.TypeSymlink, link: "y"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Filter(bytes.NewReader(mkTar(t, ents)), io.Discard, FilterOptions{})
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want EntryError", err)
			}
		})
	}
}
