package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostile is one hostile layer (or a chain of layers) and what Extract
// must do with it: fail, or succeed with these paths present/absent.
type hostile struct {
	layers  [][]*tar.Header
	wantErr bool
	present []string
	absent  []string
}

// Every entry is written with a body of Size 'x' bytes, unless
// bodyless (a size claim larger than the body).
func tarOf(t testing.TB, hdrs []*tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(h); err != nil {
			h.Format = tar.FormatGNU
			if err := tw.WriteHeader(h); err != nil {
				t.Fatalf("writing %q: %v", h.Name, err)
			}
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 && h.Size < 1<<20 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Flush()
	tw.Close()
	return b.Bytes()
}

func reg(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1} }
func sym(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target}
}
func hard(name, target string) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}
}
func dir(name string, mode int64) *tar.Header {
	return &tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}
}

// hostileCases are the path games of the issue. The target is
// <base>/target and <base>/outside holds a victim file and directory;
// "OUT" in a link name is replaced by the absolute path of outside.
func hostileCases() map[string]hostile {
	one := func(h ...*tar.Header) [][]*tar.Header { return [][]*tar.Header{h} }
	deep := strings.Repeat("d/", 10000)
	return map[string]hostile{
		"dotdot":                 {layers: one(reg("../outside/evil")), wantErr: true},
		"dotdot inside":          {layers: one(reg("a/../../outside/evil")), wantErr: true},
		"absolute":               {layers: one(reg("/outside/evil")), present: []string{"outside/evil"}},
		"symlink abs then write": {layers: one(sym("l", "OUT"), reg("l/evil")), wantErr: true},
		"symlink rel then write": {layers: one(sym("l", "../outside"), reg("l/evil")), wantErr: true},
		"symlink deep rel":       {layers: one(sym("l", "../../../../../../../../../OUT"), reg("l/evil")), wantErr: true},
		"symlink chain":          {layers: one(sym("a", "b"), sym("b", "../outside"), reg("a/evil")), wantErr: true},
		"symlink then dir":       {layers: one(sym("l", "OUT"), dir("l/sub/", 0o755)), wantErr: true},
		"symlink then symlink":   {layers: one(sym("l", "OUT"), sym("l/s", "x")), wantErr: true},
		"symlink then hardlink":  {layers: one(reg("f"), sym("l", "OUT"), hard("l/h", "f")), wantErr: true},
		"hardlink out":           {layers: one(hard("h", "../outside/victim")), wantErr: true},
		"hardlink absolute":      {layers: one(hard("h", "OUT/victim")), wantErr: true},
		"hardlink via symlink":   {layers: one(sym("l", "OUT"), hard("h", "l/victim")), wantErr: true},
		"hardlink to symlink then write": {
			layers: one(sym("l", "OUT"), hard("h", "l"), reg("h/pwned")), wantErr: true,
		},
		"hardlink to symlink across layers": {
			layers: [][]*tar.Header{{sym("l", "../outside")}, {hard("h", "l")}, {reg("h/pwned")}}, wantErr: true,
		},
		"symlink replaced by file": {
			layers: one(sym("f", "OUT/victim"), reg("f")), present: []string{"f"},
		},
		"file over symlink next layer": {
			layers: [][]*tar.Header{{sym("f", "../outside/victim")}, {reg("f")}}, present: []string{"f"},
		},
		"dir replaced by symlink": {
			layers: one(dir("d/", 0o777), sym("d", "OUT")), present: []string{"d"},
		},
		"dir over symlink": {
			layers: one(sym("d", "OUT"), dir("d/", 0o777), reg("d/x")), present: []string{"d/x"},
		},
		"whiteout through symlink": {
			layers: [][]*tar.Header{{sym("l", "OUT")}, {reg("l/.wh.victim")}}, wantErr: true,
		},
		"whiteout of symlink": {
			layers: [][]*tar.Header{{sym("l", "OUT")}, {reg(".wh.l")}}, absent: []string{"l"},
		},
		"whiteout dotdot": {layers: one(reg("../.wh.outside")), wantErr: true},
		"whiteout empty":  {layers: one(reg("d/.wh.")), wantErr: true},
		"whiteout of the parent": {
			layers: [][]*tar.Header{{dir("d/", 0o755), reg("d/f"), reg("k")}, {reg("d/.wh...")}}, wantErr: true, present: []string{"d/f", "k"},
		},
		"whiteout of the grandparent": {
			layers: [][]*tar.Header{{dir("a/b/", 0o755), reg("a/f")}, {reg("a/b/.wh...")}}, wantErr: true, present: []string{"a/f"},
		},
		"opaque through symlink": {layers: [][]*tar.Header{{sym("l", "OUT")}, {reg("l/.wh..wh..opq")}}, wantErr: true},
		"opaque at the root": {
			layers: [][]*tar.Header{{reg("a"), dir("b/", 0o755), reg("b/c")}, {reg(".wh..wh..opq"), reg("n")}},
			absent: []string{"a", "b"}, present: []string{"n"},
		},
		"opaque at the root in one layer": {layers: one(reg("a"), reg(".wh..wh..opq")), absent: []string{"a"}},
		"non-UTF-8 name":                  {layers: one(reg("\xff\xfe/\x80x")), present: []string{"\xff\xfe/\x80x"}},
		"10 KiB name":                     {layers: one(reg(strings.Repeat("n", 10<<10))), wantErr: true},
		"10 KiB component in a path":      {layers: one(reg("a/" + strings.Repeat("n", 3000))), wantErr: true},
		"10,000-deep tree":                {layers: one(reg(deep + "f")), wantErr: true},
		"repeated entries": {
			layers:  one(reg("r"), reg("r"), dir("r/", 0o755), reg("r"), sym("r", "OUT"), reg("r"), dir("d/", 0o755), dir("d/", 0o700)),
			present: []string{"r", "d"},
		},
		"size claim beyond the body": {
			layers: one(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 1 << 40}), wantErr: true,
		},
		"opaque whiteout in a FIFO": {
			layers: one(&tar.Header{Name: "p", Typeflag: tar.TypeFifo}, reg("p/.wh..wh..opq")), wantErr: true,
		},
		"entry below a FIFO": {
			layers: one(&tar.Header{Name: "p", Typeflag: tar.TypeFifo}, reg("p/x")), wantErr: true,
		},
		"hard link to a skipped device": {
			layers: one(&tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o660}, hard("dev/disk", "dev/sda"), reg("f")),
			absent: []string{"dev/sda", "dev/disk"}, present: []string{"f"},
		},
		"device without Devices": {
			layers: one(&tar.Header{Name: "sda", Typeflag: tar.TypeBlock, Devmajor: 8, Mode: 0o666}), absent: []string{"sda"},
		},
	}
}

// fixture lays out <base>/target and <base>/outside.
func fixture(t testing.TB) (base, target, outside string) {
	t.Helper()
	base = t.TempDir()
	target = filepath.Join(base, "target")
	outside = filepath.Join(base, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "vdir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("victim"), 0o640); err != nil {
		t.Fatal(err)
	}
	return base, target, outside
}

// snapshotFS records every path under base except those under skip:
// type, mode, owner, size, mtime, link target, contents of small files.
// It is the oracle: it shares no code with Extract.
func snapshotFS(t testing.TB, base, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		} else if fi.Mode().IsRegular() && fi.Size() < 1<<16 {
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

func diffFS(before, after map[string]string) []string {
	var d []string
	for k, v := range before {
		if after[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, after[k]))
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	sort.Strings(d)
	return d
}

func resolveOut(hdrs []*tar.Header, outside string) []*tar.Header {
	out := make([]*tar.Header, len(hdrs))
	for i, h := range hdrs {
		c := *h
		c.Linkname = strings.ReplaceAll(c.Linkname, "OUT", outside)
		out[i] = &c
	}
	return out
}

func TestExtractHostileLayers(t *testing.T) {
	for name, c := range hostileCases() {
		t.Run(name, func(t *testing.T) {
			base, target, outside := fixture(t)
			before := snapshotFS(t, base, target)
			var err error
			for _, l := range c.layers {
				err = Extract(context.Background(), bytes.NewReader(tarOf(t, resolveOut(l, outside))), target, Options{NoChown: os.Geteuid() != 0})
				if err != nil {
					break
				}
			}
			if d := diffFS(before, snapshotFS(t, base, target)); len(d) > 0 {
				t.Fatalf("extraction changed things outside its root:\n%s", strings.Join(d, "\n"))
			}
			if c.wantErr && err == nil {
				t.Fatal("hostile layer accepted")
			}
			if !c.wantErr && err != nil {
				t.Fatalf("Extract: %v", err)
			}
			for _, p := range c.present {
				if _, err := os.Lstat(filepath.Join(target, p)); err != nil {
					t.Errorf("%q missing: %v", p, err)
				}
			}
			for _, p := range c.absent {
				if _, err := os.Lstat(filepath.Join(target, p)); err == nil {
					t.Errorf("%q present", p)
				}
			}
		})
	}
}

// A deep tree (1,000 levels; names allow about 2,000) extracts in
// linear time.
func TestExtractDeepTree(t *testing.T) {
	var hdrs []*tar.Header
	name := ""
	for len(name)+2 <= 2000 {
		name += "d/"
		hdrs = append(hdrs, dir(name, 0o755))
	}
	hdrs = append(hdrs, reg(name+"f"))
	_, target, _ := fixture(t)
	start := time.Now()
	if err := Extract(context.Background(), bytes.NewReader(tarOf(t, hdrs)), target, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(target)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Lstat(name + "f"); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d directories deep in %v", len(hdrs)-1, time.Since(start))
}

// Directory metadata applied at the end never follows a symlink that
// replaced the directory, even one that stays inside the root.
func TestExtractDeferredDirMetaDoesNotFollow(t *testing.T) {
	_, target, _ := fixture(t)
	layer := tarOf(t, []*tar.Header{dir("keep/", 0o700), dir("d/", 0o777), sym("d", "keep")})
	if err := Extract(context.Background(), bytes.NewReader(layer), target, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(target, "keep")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("keep/ got the replaced directory's mode: %v", fi.Mode())
	}
}

// Scratch directories are made real inside the tree whatever the tree
// put in their place.
func TestScratchDoesNotFollow(t *testing.T) {
	for name, hdrs := range map[string][]*tar.Header{
		"tmp -> OUT":        {sym("tmp", "OUT")},
		"var -> OUT":        {sym("var", "OUT")},
		"var/tmp -> OUT":    {dir("var/", 0o755), sym("var/tmp", "OUT")},
		"var -> x -> OUT":   {sym("var", "x"), sym("x", "OUT")},
		"tmp is a file":     {reg("tmp")},
		"tmp hardlink":      {reg("f"), hard("tmp", "f")},
		"var -> ../outside": {sym("var", "../outside")},
	} {
		t.Run(name, func(t *testing.T) {
			base, target, outside := fixture(t)
			before := snapshotFS(t, base, target)
			if err := Extract(context.Background(), bytes.NewReader(tarOf(t, resolveOut(hdrs, outside))), target, Options{NoChown: true}); err != nil {
				t.Fatal(err)
			}
			var warned []string
			if err := Scratch(target, []string{"tmp", "var/tmp"}, Options{NoChown: os.Geteuid() != 0, Warn: func(m string) { warned = append(warned, m) }}); err != nil {
				t.Fatal(err)
			}
			if d := diffFS(before, snapshotFS(t, base, target)); len(d) > 0 {
				t.Fatalf("Scratch changed things outside the tree:\n%s", strings.Join(d, "\n"))
			}
			fi, err := os.Lstat(filepath.Join(target, "tmp"))
			if err != nil || !fi.IsDir() || fi.Mode()&fs.ModeSticky == 0 || fi.Mode().Perm() != 0o777 {
				t.Errorf("tmp: %v %v", fi, err)
			}
			t.Logf("warnings: %v", warned)
		})
	}
}

func TestExtractKeepsHoles(t *testing.T) {
	_, target, _ := fixture(t)
	const size = 16 << 20
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Size: size, Mode: 0o644})
	data := make([]byte, size)
	copy(data[1<<20:], "data in the middle")
	copy(data[size-3:], "end")
	tw.Write(data)
	tw.Close()
	if err := Extract(context.Background(), &b, target, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(target, "sparse"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("contents differ (%v)", err)
	}
	if used := diskUsage(t, filepath.Join(target, "sparse")); used > 1<<20 {
		t.Errorf("a 16 MiB file of zeros takes %d bytes on disk", used)
	}
	// Ends in a hole: still the full size.
	b.Reset()
	tw = tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "tail", Typeflag: tar.TypeReg, Size: 3 << 20, Mode: 0o644})
	tw.Write(append([]byte("head"), make([]byte, 3<<20-4)...))
	tw.Close()
	if err := Extract(context.Background(), &b, target, Options{NoChown: true}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(target, "tail")); err != nil || fi.Size() != 3<<20 {
		t.Fatalf("tail: %v %v", fi, err)
	}
}

func TestExtractTruncatedFileFails(t *testing.T) {
	_, target, _ := fixture(t)
	l := tarOf(t, []*tar.Header{{Name: "f", Typeflag: tar.TypeReg, Size: 5000}})
	l = l[:512+100]
	err := Extract(context.Background(), bytes.NewReader(l), target, Options{NoChown: true})
	if err == nil {
		t.Fatal("truncated layer accepted")
	}
}

func diskUsage(t testing.TB, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// Names in warnings come from the layer: they are quoted, so that
// terminal escape sequences in them reach the terminal as text.
func TestExtractWarningsQuoteNames(t *testing.T) {
	_, target, _ := fixture(t)
	var warned []string
	l := tarOf(t, []*tar.Header{{Name: "dev/\x1b]0;owned\x07\x1b[2J", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666}})
	err := Extract(context.Background(), bytes.NewReader(l), target, Options{NoChown: true, Warn: func(m string) { warned = append(warned, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 {
		t.Fatalf("warnings: %q", warned)
	}
	if strings.ContainsAny(warned[0], "\x1b\x07") {
		t.Fatalf("warning passes control characters through: %q", warned[0])
	}
}
