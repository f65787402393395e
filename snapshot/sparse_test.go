package snapshot

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func needTar(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("tar"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("GNU tar is required")
		}
		t.Skip("no tar")
	}
}

// sparseTree makes files with holes under dir and returns their contents.
func sparseTree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	data := make([]byte, 3*4096+17)
	rand.Read(data)
	files := map[string][]byte{}
	mk := func(name string, size int64, at ...int64) {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		want := make([]byte, size)
		for i, off := range at {
			d := data[:4096*(i%3)+100]
			if _, err := f.WriteAt(d, off); err != nil {
				t.Fatal(err)
			}
			copy(want[off:], d)
		}
		files[name] = want
	}
	mk("s", 16<<20, 12288, 8<<20, 16<<20-8292)
	mk("hole-at-end", 4<<20, 0)
	mk("empty-sparse", 4<<20)
	mk("d/"+strings.Repeat("n", 150)+"/long", 1<<20, 4096*7)
	return files
}

func gnuTar(t *testing.T, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("tar", append(append([]string{"--create", "--sparse", "--numeric-owner", "--file=-"}, args...), "--directory="+dir, ".")...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	return out
}

func TestFilterSparse(t *testing.T) {
	needTar(t)
	src := t.TempDir()
	files := sparseTree(t, src)
	for _, format := range []string{"--format=gnu", "--format=posix"} {
		t.Run(format, func(t *testing.T) {
			in := gnuTar(t, src, format)
			var out bytes.Buffer
			if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{SpoolDir: t.TempDir()}); err != nil {
				t.Fatal(err)
			}
			if out.Len() > 256<<10 {
				t.Fatalf("layer of sparse files is %d bytes: holes were written", out.Len())
			}
			var again bytes.Buffer
			if _, err := Filter(bytes.NewReader(in), &again, FilterOptions{}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), again.Bytes()) {
				t.Fatal("filter output not deterministic")
			}
			// Go's reader: exact content, PAX sparse 1.0 records.
			tr := tar.NewReader(bytes.NewReader(out.Bytes()))
			seen := 0
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want, ok := files[h.Name]
				if !ok {
					continue
				}
				seen++
				if h.PAXRecords["GNU.sparse.major"] != "1" || h.PAXRecords["GNU.sparse.minor"] != "0" || h.Typeflag != tar.TypeReg {
					t.Errorf("%s: not a PAX sparse 1.0 entry: %v %q", h.Name, h.PAXRecords, h.Typeflag)
				}
				got, err := io.ReadAll(tr)
				if err != nil {
					t.Fatalf("%s: %v", h.Name, err)
				}
				if h.Size != int64(len(want)) || !bytes.Equal(got, want) {
					t.Errorf("%s: content differs (size %d, want %d)", h.Name, h.Size, len(want))
				}
			}
			if seen != len(files) {
				t.Fatalf("saw %d of %d sparse files", seen, len(files))
			}
			// GNU tar restores the content with its holes.
			dst := t.TempDir()
			x := exec.Command("tar", "--extract", "--file=-", "--directory="+dst)
			x.Stdin = bytes.NewReader(out.Bytes())
			if b, err := x.CombinedOutput(); err != nil {
				t.Fatalf("tar -x: %v: %s", err, b)
			}
			for name, want := range files {
				got, err := os.ReadFile(filepath.Join(dst, name))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("GNU tar extracted %s wrong: %v", name, err)
				}
				fi, _ := os.Stat(filepath.Join(dst, name))
				if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 1<<20 {
					t.Errorf("%s takes %d bytes on disk after GNU tar -x", name, blocks)
				}
			}
		})
	}
}

// sparseEntry is a hand-made PAX sparse 1.0 entry with the given map
// and data section.
func sparseEntry(name string, realsize int64, smap []frag, data []byte) []byte {
	m := encodeSparseMap(smap)
	size := int64(len(m) + len(data))
	h, _ := sparseHeaders(&tar.Header{Name: name, Mode: 0o644, Size: realsize, ModTime: time.Unix(1, 0)}, size)
	b := append(h, m...)
	b = append(b, data...)
	b = append(b, make([]byte, pad512(size))...)
	return append(b, make([]byte, 1024)...)
}

func TestFilterSparseHostile(t *testing.T) {
	t.Run("huge realsize, tiny data", func(t *testing.T) {
		in := sparseEntry("big", 1<<28, []frag{{1<<28 - 10, 10}}, []byte("0123456789"))
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		var out bytes.Buffer
		if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{SpoolDir: t.TempDir()}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&ms1)
		if a := ms1.TotalAlloc - ms0.TotalAlloc; a > 16<<20 {
			t.Fatalf("filter allocated %d bytes for a 256 MiB hole", a)
		}
		if out.Len() > 8<<10 {
			t.Fatalf("output %d bytes", out.Len())
		}
		tr := tar.NewReader(&out)
		h, err := tr.Next()
		if err != nil || h.Name != "big" || h.Size != 1<<28 {
			t.Fatalf("%v %v", h, err)
		}
	})
	for name, in := range map[string][]byte{
		"data past realsize": sparseEntry("a", 100, []frag{{90, 20}}, make([]byte, 20)),
		"overlapping map":    sparseEntry("a", 100, []frag{{0, 20}, {10, 20}}, make([]byte, 40)),
		"short data":         sparseEntry("a", 1<<20, []frag{{0, 8192}}, make([]byte, 100)),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Filter(bytes.NewReader(in), io.Discard, FilterOptions{SpoolDir: t.TempDir()})
			if err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestSparseMapCap(t *testing.T) {
	old := maxSparseFrags
	maxSparseFrags = 8
	defer func() { maxSparseFrags = old }()
	// 100 data blocks, each followed by a hole of growing size.
	var content []byte
	var smap []frag
	var data []byte
	var off int64
	for i := range 100 {
		blk := bytes.Repeat([]byte{byte(i + 1)}, 4096)
		smap = append(smap, frag{off, 4096})
		data = append(data, blk...)
		content = append(content, blk...)
		gap := 4096 * (1 + i%5)
		content = append(content, make([]byte, gap)...)
		off += int64(4096 + gap)
	}
	in := sparseEntry("f", off, smap, data)
	var out bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{SpoolDir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	// The map of the output: its first line is the count.
	i := bytes.Index(out.Bytes(), []byte("GNUSparseFile.0/f"))
	if i < 0 {
		t.Fatal("no sparse entry")
	}
	body := out.Bytes()[i-i%512+512:]
	n := string(body[:bytes.IndexByte(body, '\n')])
	if len(n) > 1 || n[0] > '8' {
		t.Fatalf("map has %s entries, cap 8", n)
	}
	tr := tar.NewReader(&out)
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(tr)
	if !bytes.Equal(got, content) {
		t.Fatal("content changed by coalescing")
	}
}

func TestPAXRecord(t *testing.T) {
	for _, c := range []struct{ k, v, want string }{
		{"a", "b", "6 a=b\n"},
		{"path", strings.Repeat("x", 91), "101 path=" + strings.Repeat("x", 91) + "\n"},
		{"path", strings.Repeat("x", 90), "99 path=" + strings.Repeat("x", 90) + "\n"},
		{"path", strings.Repeat("x", 89), "98 path=" + strings.Repeat("x", 89) + "\n"},
	} {
		if got := paxRecord(c.k, c.v); got != c.want {
			t.Errorf("paxRecord(%q, %d bytes) = %q", c.k, len(c.v), got)
		}
	}
}

func TestFilterDenseSparse(t *testing.T) {
	in := sparseEntry("f", 1<<20, []frag{{4096, 5}}, []byte("hello"))
	var out bytes.Buffer
	if _, err := Filter(bytes.NewReader(in), &out, FilterOptions{DenseSparse: true}); err != nil {
		t.Fatal(err)
	}
	if out.Len() < 1<<20 || bytes.Contains(out.Bytes(), []byte("GNU.sparse")) {
		t.Fatalf("DenseSparse output is %d bytes", out.Len())
	}
	tr := tar.NewReader(&out)
	h, err := tr.Next()
	if err != nil || h.Name != "f" || h.Size != 1<<20 {
		t.Fatalf("%v %v", h, err)
	}
}
