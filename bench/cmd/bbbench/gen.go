package main

import (
	"archive/tar"
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
)

// The generated content is deterministic for a given seed, so every run of
// the benchmark sees the same bytes and sizes.

// Paths inside the bench root filesystem.
const (
	srcRoot = "opt/bench/src"
	binRoot = "opt/bench/bin"
)

// genTime is the mtime of every generated entry.
var genTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var words = strings.Fields(`func return if else for range var const type struct interface map chan
go defer select case switch default break continue package import error nil true false string int
int64 byte rune len cap append make new copy delete panic recover context ctx err value result
request response handler server client config options store layer image blob digest size stream
reader writer buffer path name slug backend commit resume export import push pull serve registry
manifest index tag token user agent session bottle snapshot filter tar gzip hash sha256 self this
def class async await const let function export default module require props state render test
assert expect describe it should when then given public private static void final override`)

var exts = []string{"go", "go", "go", "py", "js", "ts", "md", "json", "yaml", "c", "h", "rs"}

// srcPath is the i-th file of the generated source tree.
func srcPath(i int) string {
	r := rand.New(rand.NewPCG(uint64(i), 0x5eed))
	w := words[r.IntN(len(words))]
	ext := exts[r.IntN(len(exts))]
	return fmt.Sprintf("%s/mod%03d/pkg%02d/%s_%03d.%s", srcRoot, i/300, (i/30)%10, w, i%30, ext)
}

// binName is the i-th generated binary.
func binName(i int) string { return fmt.Sprintf("%s/lib%03d.so", binRoot, i) }

// textFile writes source-like text of about n bytes: indented lines of
// identifiers, compressible about 3:1 like real source code.
func textFile(w io.Writer, r *rand.Rand, n int) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	written := 0
	for written < n {
		var line strings.Builder
		line.WriteString(strings.Repeat("\t", r.IntN(4)))
		for k := 2 + r.IntN(9); k > 0; k-- {
			line.WriteString(words[r.IntN(len(words))])
			switch r.IntN(6) {
			case 0:
				line.WriteString("(")
			case 1:
				line.WriteString(", ")
			case 2:
				fmt.Fprintf(&line, "%d ", r.IntN(1000))
			default:
				line.WriteString(" ")
			}
		}
		line.WriteString("\n")
		m, err := bw.WriteString(line.String())
		if err != nil {
			return err
		}
		written += m
	}
	return bw.Flush()
}

// binaryFile writes n bytes shaped like machine code and data sections:
// a mix of incompressible blocks, skewed "instruction" bytes, string
// tables and zero padding, so gzip -1 shrinks it to about 0.4 like real
// ELF binaries.
func binaryFile(w io.Writer, r *rand.Rand, n int64) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	block := make([]byte, 4096)
	// Instruction sequences, reused with a skewed frequency as code does.
	seqs := make([][]byte, 1024)
	for i := range seqs {
		seqs[i] = make([]byte, 3+r.IntN(10))
		for k := range seqs[i] {
			seqs[i][k] = byte(r.IntN(256))
		}
	}
	for written := int64(0); written < n; {
		switch p := r.IntN(100); {
		case p < 15: // compressed data, hashes, packed tables
			for i := 0; i+8 <= len(block); i += 8 {
				v := r.Uint64()
				for k := 0; k < 8; k++ {
					block[i+k] = byte(v >> (8 * k))
				}
			}
		case p < 80: // code: common sequences with operands
			i := 0
			for i < len(block) {
				q := seqs[r.IntN(32)*r.IntN(32)]
				i += copy(block[i:], q)
				for k := r.IntN(3); k > 0 && i < len(block); k-- {
					block[i] = byte(r.IntN(256))
					i++
				}
			}
		case p < 94: // string tables
			i := 0
			for i < len(block) {
				s := words[r.IntN(len(words))]
				i += copy(block[i:], s)
				if i < len(block) {
					block[i] = 0
					i++
				}
			}
		default: // padding
			clear(block)
		}
		m := int64(len(block))
		if n-written < m {
			m = n - written
		}
		if _, err := bw.Write(block[:m]); err != nil {
			return err
		}
		written += m
	}
	return bw.Flush()
}

// textSize draws a source file size: mostly a few KiB, a long tail.
func textSize(r *rand.Rand) int {
	n := int(r.ExpFloat64() * 4096)
	return min(max(n, 64), 64<<10)
}

// binSizes splits totalMB into binaries of 5-40 MB, at least four of
// them when totalMB allows.
func binSizes(totalMB int, seed uint64) []int64 {
	if totalMB <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, 0xb1))
	total := int64(totalMB) << 20
	var out []int64
	most := min(40, max(6, totalMB/4))
	for total > 0 {
		s := int64(5+r.IntN(most-4)) << 20
		if s > total || total-s < 2<<20 {
			s = total
		}
		out = append(out, s)
		total -= s
	}
	return out
}

// genBase writes the generated part of the base root filesystem under dir:
// files source files and binMB of binaries.
func genBase(args []string) error {
	fs := flag.NewFlagSet("gen-base", flag.ExitOnError)
	files := fs.Int("files", 30000, "number of small source files")
	binMB := fs.Int("bin-mb", 300, "megabytes of binaries")
	seed := fs.Uint64("seed", 1, "content seed")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("usage: bbbench gen-base [flags] ROOTFS_DIR")
	}
	dir := fs.Arg(0)
	var bytes int64
	for i := 0; i < *files; i++ {
		p := filepath.Join(dir, srcPath(i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		r := rand.New(rand.NewPCG(*seed, uint64(i)))
		n := textSize(r)
		if err := writeFile(p, 0o644, func(w io.Writer) error { return textFile(w, r, n) }); err != nil {
			return err
		}
		bytes += int64(n)
	}
	if err := os.MkdirAll(filepath.Join(dir, binRoot), 0o755); err != nil {
		return err
	}
	for i, n := range binSizes(*binMB, *seed) {
		r := rand.New(rand.NewPCG(*seed, 1<<32+uint64(i)))
		if err := writeFile(filepath.Join(dir, binName(i)), 0o755, func(w io.Writer) error { return binaryFile(w, r, n) }); err != nil {
			return err
		}
		bytes += n
	}
	fmt.Fprintf(os.Stderr, "gen-base: %d files, %d MB of binaries, %.0f MB in all under %s\n", *files, *binMB, float64(bytes)/1e6, dir)
	return nil
}

func writeFile(p string, mode os.FileMode, fill func(io.Writer) error) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chtimes(p, genTime, genTime)
}

// genWork writes the agent work tar stream to stdout.
func genWork(args []string) error {
	fs := flag.NewFlagSet("gen-work", flag.ExitOnError)
	w := workFlags(fs)
	_ = fs.Parse(args)
	n, err := writeWork(os.Stdout, *w)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gen-work: %.0f MB of changes\n", float64(n)/1e6)
	return nil
}

// workOptions size the agent work.
type workOptions struct {
	MB    int    // approximate megabytes of changes
	Files int    // source files in the base tree (as given to gen-base)
	Seed  uint64 // content seed
}

func workFlags(fs *flag.FlagSet) *workOptions {
	w := &workOptions{}
	fs.IntVar(&w.MB, "mb", 150, "approximate megabytes of changes")
	fs.IntVar(&w.Files, "files", 30000, "number of source files in the base tree (as given to gen-base)")
	fs.Uint64Var(&w.Seed, "seed", 2, "content seed")
	return w
}

// writeWork writes, as a tar stream, the "agent work" applied to a running
// bench bottle: a new project tree with sources, git objects and build
// output, a build cache, rewritten files of the base source tree and one
// rewritten binary. Extract it at / inside the bottle; workDeletes lists
// the files it deletes. It returns the bytes of file content written.
func writeWork(dst io.Writer, opts workOptions) (int64, error) {
	mb, files, seed := &opts.MB, &opts.Files, &opts.Seed
	scale := float64(*mb) / 150
	out := bufio.NewWriterSize(dst, 1<<20)
	tw := tar.NewWriter(out)
	r := rand.New(rand.NewPCG(*seed, 0x3))
	dirs := map[string]bool{}
	owner := func(p string) int {
		if strings.HasPrefix(p, "home/") {
			return 1000
		}
		return 0
	}
	mkdirs := func(p string) error {
		var chain []string
		for d := path.Dir(p); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			chain = append(chain, d)
		}
		for i := len(chain) - 1; i >= 0; i-- {
			id := owner(chain[i])
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: chain[i] + "/", Mode: 0o755, Uid: id, Gid: id, ModTime: genTime}); err != nil {
				return err
			}
		}
		return nil
	}
	var total int64
	put := func(p string, mode int64, n int64, fill func(io.Writer) error) error {
		if err := mkdirs(p); err != nil {
			return err
		}
		id := owner(p)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: p, Mode: mode, Size: n, Uid: id, Gid: id, ModTime: time.Now().Truncate(time.Second)}); err != nil {
			return err
		}
		cw := &iox.CountingWriter{W: tw}
		if err := fill(cw); err != nil {
			return err
		}
		if cw.Count() != n {
			return fmt.Errorf("gen-work: %s: wrote %d bytes, declared %d", p, cw.Count(), n)
		}
		total += n
		return nil
	}
	text := func(p string, n int) error {
		var buf strings.Builder
		if err := textFile(&buf, r, n); err != nil {
			return err
		}
		s := buf.String()
		return put(p, 0o644, int64(len(s)), func(w io.Writer) error { _, err := io.WriteString(w, s); return err })
	}
	bin := func(p string, n int64) error {
		return put(p, 0o755, n, func(w io.Writer) error { return binaryFile(w, r, n) })
	}
	random := func(p string, n int64) error {
		return put(p, 0o444, n, func(w io.Writer) error {
			var key [32]byte
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			_, err := io.CopyN(w, rand.NewChaCha8(key), n)
			return err
		})
	}
	sc := func(n int) int { return max(1, int(float64(n)*scale)) }
	err := func() error {

		// A new project: sources, git objects (incompressible), build output.
		for i := range sc(3000) {
			if err := text(fmt.Sprintf("home/agent/project/src/pkg%02d/%s_%04d.go", i%40, words[i%len(words)], i), textSize(r)); err != nil {
				return err
			}
		}
		for i := range sc(2000) {
			if err := random(fmt.Sprintf("home/agent/project/.git/objects/%02x/%038x", i%256, r.Uint64()), int64(2<<10+r.IntN(16<<10))); err != nil {
				return err
			}
		}
		for i := range sc(3) {
			if err := bin(fmt.Sprintf("home/agent/project/build/app%d", i), 20<<20); err != nil {
				return err
			}
		}
		// A build cache.
		for i := range sc(1500) {
			if err := bin(fmt.Sprintf("home/agent/.cache/go-build/%02x/%016x-d", i%256, r.Uint64()), int64(4<<10+r.IntN(44<<10))); err != nil {
				return err
			}
		}
		// Edits to the base image's files: every 40th source file, one binary.
		for i := 7; i < *files; i += 40 {
			if err := text(srcPath(i), textSize(r)); err != nil {
				return err
			}
		}
		if err := bin(binName(1), int64(sc(15))<<20); err != nil {
			return err
		}
		if err := tw.Close(); err != nil {
			return err
		}
		return out.Flush()
	}()
	return total, err
}

// workDeletes are the base image's files the agent work deletes.
var workDeletes = []string{"/" + binName(2), "/etc/motd"}
