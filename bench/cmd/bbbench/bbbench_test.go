package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

func TestMedianTakesMiddleWallAndLargestRSS(t *testing.T) {
	m := median([]sample{{Wall: 3, RSSKiB: 10}, {Wall: 1, RSSKiB: 30}, {Wall: 2, RSSKiB: 20, Out: 7}})
	if m.Wall != 2 || m.Out != 7 || m.RSSKiB != 30 {
		t.Fatalf("median = %+v, want wall 2, out 7, rss 30", *m)
	}
	if median(nil) != nil {
		t.Fatal("median of nothing is not nil")
	}
}

func TestStagedScriptReportsEachStage(t *testing.T) {
	r, err := shell(context.Background(), nil, stagedScript("first", "true", "second thing", "echo hi >/dev/null"))
	if err != nil {
		t.Fatal(err)
	}
	st := parseStages(r.Stderr)
	if _, ok := st["first"]; !ok || len(st) != 2 {
		t.Fatalf("stages = %v from %q", st, r.Stderr)
	}
	if _, ok := st["second thing"]; !ok {
		t.Fatalf("stages = %v", st)
	}
}

func TestTarOKAcceptsExitOneOnly(t *testing.T) {
	for code, ok := range map[string]bool{"0": true, "1": true, "2": false} {
		_, err := shell(context.Background(), nil, tarOK("(exit "+code+")")+" | cat")
		if (err == nil) != ok {
			t.Errorf("exit %s: err = %v, want ok=%v", code, err, ok)
		}
	}
}

func TestMeasureReportsRSS(t *testing.T) {
	r, err := measure(context.Background(), nil, "true")
	if err != nil {
		t.Fatal(err)
	}
	if r.RSSKiB <= 0 || r.Wall <= 0 {
		t.Fatalf("sample = %+v", r.sample)
	}
}

func TestGeneratedContentIsDeterministicAndCompressesLikeRealFiles(t *testing.T) {
	if a, b := srcPath(42), srcPath(42); a != b || srcPath(1) == srcPath(2) {
		t.Fatal("srcPath is not a stable, distinct naming")
	}
	gen := func(seed uint64) []byte {
		var b bytes.Buffer
		if err := binaryFile(&b, rand.New(rand.NewPCG(seed, 1)), 1<<20); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a := gen(1)
	if !bytes.Equal(a, gen(1)) || bytes.Equal(a, gen(2)) {
		t.Fatal("binaryFile is not deterministic per seed")
	}
	if r := gzipRatio(t, a); r < 0.3 || r > 0.6 {
		t.Errorf("binary gzip -1 ratio %.2f, want 0.3-0.6 like ELF binaries", r)
	}
	var txt bytes.Buffer
	if err := textFile(&txt, rand.New(rand.NewPCG(1, 1)), 1<<20); err != nil {
		t.Fatal(err)
	}
	if r := gzipRatio(t, txt.Bytes()); r < 0.2 || r > 0.5 {
		t.Errorf("source gzip -1 ratio %.2f, want 0.2-0.5 like source code", r)
	}
	if got := binSizes(60, 1); len(got) < 4 {
		t.Errorf("binSizes(60) = %d files, want at least 4 (work rewrites lib001 and deletes lib002)", len(got))
	}
}

func gzipRatio(t *testing.T, b []byte) float64 {
	t.Helper()
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, 1)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return float64(out.Len()) / float64(len(b))
}

func TestWorkIsAValidTarOfTheRequestedSize(t *testing.T) {
	var b bytes.Buffer
	n, err := writeWork(&b, workOptions{MB: 40, Files: 400, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n < 30e6 || n > 55e6 {
		t.Errorf("work of %d bytes, want about 40 MB", n)
	}
	tr := tar.NewReader(&b)
	var files int
	var sum int64
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[h.Name] {
			t.Fatalf("duplicate entry %s", h.Name)
		}
		seen[h.Name] = true
		if h.Typeflag == tar.TypeReg {
			files++
			sum += h.Size
		}
		if strings.HasPrefix(h.Name, "home/") && h.Name != "home/" && h.Uid != 1000 {
			t.Errorf("%s owned by %d, want the agent's uid 1000", h.Name, h.Uid)
		}
	}
	if sum != n || files == 0 {
		t.Fatalf("tar holds %d files, %d bytes; writeWork said %d", files, sum, n)
	}
	if !seen[srcPath(7)] || !seen[binName(1)] {
		t.Error("work does not rewrite files of the base tree")
	}
}

func TestShJoinQuotes(t *testing.T) {
	got := shJoin([]string{"tar", "--xattrs-include=*", "it's", "a b"})
	out, err := exec.Command("bash", "-c", "printf '%s\\n' "+got).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "tar\n--xattrs-include=*\nit's\na b\n" {
		t.Fatalf("shJoin round trip: %q", out)
	}
}

func TestIssue10TargetsListEveryRatioAndMarkMissingOnes(t *testing.T) {
	st := func(id string, wall float64, out int64, basis, entries int64) *step {
		return &step{ID: id, Issue: 10, Group: "g", Name: id, Basis: basis, Entries: entries, Median: &sample{Wall: wall, Out: out, RSSKiB: 40 << 10}}
	}
	rep := &report{Host: map[string]string{}, Steps: []*step{
		st("incr10-first-dir", 10, 300, 0, 0), st("incr10-second-dir", 2, 30, 0, 0), st("incr10-gzip", 1, 25, 0, 0),
		st("incr10-scale-big-small", 10, 0, 1e9, 0), st("incr10-scale-big", 110, 0, 10e9, 0),
	}}
	e := &benchEnv{cfg: &config{Issues: map[int]bool{10: true}}, rep: rep}
	rep.Targets = e.targets()
	want := map[string]string{
		"dir backend: second commit ÷ first commit":                               "0.20 pass",
		"dir backend: second commit's new layer ÷ the change as tar | gzip -1":    "1.20 pass",
		"Docker (1 GB bottle): bb commit --no-load (incremental) ÷ docker commit": "missing",
		"container stand-in, --no-load: second commit ÷ first commit":             "missing",
	}
	found := 0
	for _, tg := range rep.Targets {
		w, ok := want[tg.Label]
		if !ok {
			if strings.HasPrefix(tg.Label, "linear growth: time per byte") {
				if tg.Missing || tg.Value < 1.09 || tg.Value > 1.11 || !tg.Pass {
					t.Errorf("linearity %+v", tg)
				}
			}
			continue
		}
		found++
		got := "missing"
		if !tg.Missing {
			got = fmt.Sprintf("%.2f", tg.Value)
			if tg.Pass {
				got += " pass"
			}
		}
		if got != w {
			t.Errorf("%s: %s, want %s", tg.Label, got, w)
		}
	}
	if found != len(want) {
		t.Errorf("found %d of %d targets: %+v", found, len(want), rep.Targets)
	}
	if md := renderMarkdown(rep); !strings.Contains(md, "not measured in this run") || !strings.Contains(md, "side by side") {
		t.Errorf("report lacks the missing rows:\n%s", md)
	}
}
