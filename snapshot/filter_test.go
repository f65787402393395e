package snapshot

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/rootfs"
)

type ent struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	uid        int
	pax        map[string]string
}

func mkTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Uid: e.uid,
			Uname: "someone", ModTime: time.Unix(1700000000, 123456789), AccessTime: time.Unix(1, 0),
			PAXRecords: e.pax, Format: tar.FormatPAX}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func readNames(t *testing.T, b []byte) map[string]*tar.Header {
	t.Helper()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[h.Name] = h
	}
}

func TestFilterNormalisesAndExcludes(t *testing.T) {
	in := mkTar(t, []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "./etc/hosts", typ: tar.TypeReg, body: "127.0.0.1 x"},
		{name: "./etc/passwd", typ: tar.TypeReg, body: "root:x:0:0::/root:/bin/sh\n"},
		{name: "./proc/", typ: tar.TypeDir, mode: 0o555},
		{name: "./proc/1/status", typ: tar.TypeReg, body: "x"},
		{name: "./tmp/", typ: tar.TypeDir, mode: 0o700, uid: 1000},
		{name: "./tmp/secret", typ: tar.TypeReg, body: "x"},
		{name: "/home/node/a", typ: tar.TypeReg, body: "a", uid: 1000, pax: map[string]string{"SCHILY.xattr.user.k": "v", "atime": "1"}},
		{name: "home/node/b", typ: tar.TypeLink, link: "./home/node/a"},
		{name: "home/node/c", typ: tar.TypeSymlink, link: "/etc/passwd"},
		{name: "home/node/setuid", typ: tar.TypeReg, body: "s", mode: 0o4755},
		{name: "vol/data", typ: tar.TypeReg, body: "volume"},
	})
	var out bytes.Buffer
	st, err := Filter(bytes.NewReader(in), &out, FilterOptions{Excludes: append(DefaultExcludes, "vol")})
	if err != nil {
		t.Fatal(err)
	}
	got := readNames(t, out.Bytes())
	for _, want := range []string{"etc/", "etc/passwd", "proc/", "tmp/", "home/node/a", "home/node/b", "home/node/c", "home/node/setuid"} {
		if got[want] == nil {
			t.Errorf("missing %q in %v", want, keys(got))
		}
	}
	for _, gone := range []string{"./", "etc/hosts", "proc/1/status", "tmp/secret", "vol/data"} {
		if got[gone] != nil {
			t.Errorf("%q should have been dropped", gone)
		}
	}
	if h := got["tmp/"]; h.Mode != 0o1777 || h.Uid != 0 {
		t.Errorf("tmp/ = mode %o uid %d, want 1777 root", h.Mode, h.Uid)
	}
	a := got["home/node/a"]
	if a.Uname != "" || a.Uid != 1000 || a.PAXRecords["SCHILY.xattr.user.k"] != "v" || !a.AccessTime.IsZero() {
		t.Errorf("home/node/a header not normalised: %+v", a)
	}
	if a.ModTime.Nanosecond() != 0 {
		t.Errorf("mtime not rounded: %v", a.ModTime)
	}
	if got["home/node/b"].Linkname != "home/node/a" {
		t.Errorf("hard link target = %q", got["home/node/b"].Linkname)
	}
	if got["home/node/setuid"].Mode != 0o4755 {
		t.Errorf("setuid mode lost: %o", got["home/node/setuid"].Mode)
	}
	if st.Entries != int64(len(got)) || st.TarBytes != int64(out.Len()) {
		t.Errorf("stats %+v, entries %d bytes %d", st, len(got), out.Len())
	}
}

func TestFilterIsDeterministic(t *testing.T) {
	in := mkTar(t, []ent{{name: "a", typ: tar.TypeReg, body: "x"}, {name: "d/", typ: tar.TypeDir}})
	var o1, o2 bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &o1, FilterOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Filter(bytes.NewReader(in), &o2, FilterOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(o1.Bytes(), o2.Bytes()) {
		t.Fatal("two filters of the same stream differ")
	}
}

func TestFilterRefusesEscapes(t *testing.T) {
	cases := map[string][]ent{
		"dotdot":          {{name: "../etc/passwd", typ: tar.TypeReg, body: "x"}},
		"nested dotdot":   {{name: "a/../../b", typ: tar.TypeReg, body: "x"}},
		"through symlink": {{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "l/passwd", typ: tar.TypeReg, body: "x"}},
		"link dotdot":     {{name: "h", typ: tar.TypeLink, link: "../../etc/shadow"}},
	}
	for name, ents := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Filter(bytes.NewReader(mkTar(t, ents)), io.Discard, FilterOptions{})
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want EntryError", err)
			}
		})
	}
}

func TestFilterDropsDanglingHardLink(t *testing.T) {
	var warned []string
	in := mkTar(t, []ent{{name: "h", typ: tar.TypeLink, link: "tmp/gone"}})
	var out bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{Warn: func(m string) { warned = append(warned, m) }}); err != nil {
		t.Fatal(err)
	}
	if len(readNames(t, out.Bytes())) != 0 || len(warned) != 1 {
		t.Fatalf("dangling hard link kept or not warned: %v", warned)
	}
}

func TestFilterTruncatedStream(t *testing.T) {
	in := mkTar(t, []ent{{name: "a", typ: tar.TypeReg, body: strings.Repeat("x", 5000)}})
	_, err := Filter(bytes.NewReader(in[:1500]), io.Discard, FilterOptions{})
	if err == nil {
		t.Fatal("truncated stream accepted")
	}
}

// FuzzFilter feeds arbitrary tar streams to Filter. Whatever passes
// must be a clean relative tar, and the oracle (a plain extractor
// confined to a temp directory) must not write outside its target.
func FuzzFilter(f *testing.F) {
	for _, seed := range filterSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		if _, err := Filter(bytes.NewReader(b), &out, FilterOptions{Excludes: DefaultExcludes}); err != nil {
			return
		}
		tr := tar.NewReader(bytes.NewReader(out.Bytes()))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if strings.HasPrefix(h.Name, "/") || rootfs.HasDotDot(h.Name) {
				t.Fatalf("escaping name passed: %q", h.Name)
			}
		}
		checkFiltered(t, newOracleDirs(t), b)
	})
}

// filterSeeds are the seed inputs of FuzzFilter (also checked in under
// testdata/fuzz/FuzzFilter).
func filterSeeds(t testing.TB) [][]byte {
	seeds := [][]byte{
		{},
		mkTar(t, []ent{{name: "a", typ: tar.TypeReg, body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "/"}}),
		mkTar(t, []ent{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "h", typ: tar.TypeLink, link: "l"}, {name: "h/pwned", typ: tar.TypeReg, body: "x"}}),
		mkTar(t, []ent{{name: "l", typ: tar.TypeSymlink, link: "../outside"}, {name: "l/victim", typ: tar.TypeReg, body: "x"}}),
		mkTar(t, []ent{{name: "./", typ: tar.TypeDir}, {name: "./tmp/", typ: tar.TypeDir}, {name: "./tmp/x", typ: tar.TypeReg, body: "x"}, {name: "../x", typ: tar.TypeReg, body: "x"}}),
		mkTar(t, []ent{{name: "d/", typ: tar.TypeDir}, {name: "d/f", typ: tar.TypeReg, body: "x"}, {name: "d/h", typ: tar.TypeLink, link: "d/f"}, {name: "d/s", typ: tar.TypeSymlink, link: "f"}}),
	}
	for _, e := range oraclePool("/outside") {
		seeds = append(seeds, mkTar(t, []ent{e, {name: "h", typ: tar.TypeLink, link: "a"}, {name: "h/x", typ: tar.TypeReg, body: "x"}}))
	}
	return seeds
}

func TestWriteFilterFuzzCorpus(t *testing.T) {
	if os.Getenv("BB_WRITE_FUZZ_CORPUS") != "1" {
		t.Skip("set BB_WRITE_FUZZ_CORPUS=1 to rewrite the checked-in seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzFilter")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, b := range filterSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// GNU tar --sparse writes old-GNU sparse entries; the filter passes them
// as regular files with their holes as zeros.
func TestFilterKeepsGNUSparseFiles(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Fatal("GNU tar is needed")
	}
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "big"))
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8<<20)
	copy(want[3<<20:], "data")
	if _, err := f.WriteAt([]byte("data"), 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(8 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			in, err := exec.Command("tar", "--create", "--sparse", "--format="+format, "--file=-", "--directory="+dir, ".").Output()
			if err != nil {
				t.Fatal(err)
			}
			if len(in) > 1<<20 {
				t.Fatalf("tar --sparse wrote %d bytes: holes were not skipped", len(in))
			}
			var out bytes.Buffer
			if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{Warn: func(m string) { t.Error(m) }}); err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(&out)
			for {
				h, err := tr.Next()
				if err != nil {
					t.Fatalf("big not in the filtered stream: %v", err)
				}
				if h.Name != "big" {
					continue
				}
				got, err := io.ReadAll(tr)
				if err != nil || h.Typeflag != tar.TypeReg || !bytes.Equal(got, want) {
					t.Fatalf("big: type %q, %d bytes, %v", h.Typeflag, len(got), err)
				}
				return
			}
		})
	}
}

// A hard link carries the xattrs of the file it links to (a runtime that
// chowns the link entry would otherwise clear security.capability), and a
// later entry of the same name replaces what the link would get.
func TestFilterHardLinkCarriesTargetXattrs(t *testing.T) {
	caps := map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
	in := mkTar(t, []ent{
		{name: "bin/ping", typ: tar.TypeReg, body: "x", pax: caps},
		{name: "bin/ping2", typ: tar.TypeLink, link: "bin/ping"},
		{name: "bin/plain", typ: tar.TypeReg, body: "y", pax: caps},
		{name: "bin/plain", typ: tar.TypeReg, body: "z"},
		{name: "bin/plain2", typ: tar.TypeLink, link: "bin/plain"},
	})
	var out bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{}); err != nil {
		t.Fatal(err)
	}
	got := readNames(t, out.Bytes())
	if v := got["bin/ping2"].PAXRecords["SCHILY.xattr.security.capability"]; v != caps["SCHILY.xattr.security.capability"] {
		t.Errorf("hard link xattr = %q, want the target's", v)
	}
	if len(got["bin/plain2"].PAXRecords) != 0 {
		t.Errorf("hard link to a replaced file got stale xattrs %v", got["bin/plain2"].PAXRecords)
	}
}
