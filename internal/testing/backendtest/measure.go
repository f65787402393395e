package backendtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/snapshot"
)

// EnvMeasure turns on the measurements (they are reports, not tests).
const EnvMeasure = "BB_MEASURE"

// RequireMeasure skips t unless BB_MEASURE is set.
func RequireMeasure(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvMeasure) == "" {
		t.Skip("set BB_MEASURE=1 to run the measurements")
	}
}

// FillRootfs adds about mb megabytes of agent work to the root filesystem
// dir: half incompressible (15 big random files: binaries, archives),
// the rest many small text-like files (a source tree) and a few logs.
func FillRootfs(t testing.TB, dir string, mb int) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(1, 2))
	words := strings.Fields("func return if err nil package import type struct interface map string int byte error context the a of to in and for with on at by from bottle layer snapshot tar stream")
	bigN := 15
	bigSize := mb / 2 << 20 / bigN
	for i := 0; i < bigN; i++ {
		b := make([]byte, bigSize)
		rand.Read(b)
		p := filepath.Join(dir, "home/node/work/bin", fmt.Sprintf("blob%02d", i))
		write(t, p, b)
	}
	small := mb * 2 / 5 << 20
	const fileSize = 10 << 10
	for i := 0; i*fileSize < small; i++ {
		var sb strings.Builder
		for sb.Len() < fileSize {
			sb.WriteString(words[r.IntN(len(words))])
			if r.IntN(8) == 0 {
				sb.WriteString("\n")
			} else {
				sb.WriteString(" ")
			}
		}
		write(t, filepath.Join(dir, "home/node/work/src", fmt.Sprintf("d%03d/f%05d.go", i/100, i)), []byte(sb.String()))
	}
	logs := mb / 10 << 20
	for i := 0; i < 5; i++ {
		var sb strings.Builder
		for sb.Len() < logs/5 {
			fmt.Fprintf(&sb, "2026-06-23T08:%02d:%02dZ info request served path=/v1/items/%d status=200\n", r.IntN(60), r.IntN(60), r.IntN(100000))
		}
		write(t, filepath.Join(dir, "var/log/agent", fmt.Sprintf("agent.%d.log", i)), []byte(sb.String()))
	}
}

func write(t testing.TB, p string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Timing is one measured method.
type Timing struct {
	Name   string
	Stream []time.Duration // stream to io.Discard
	Commit []time.Duration // full commit without install
	Bytes  int64
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (m Timing) String() string {
	mb := float64(m.Bytes) / (1 << 20)
	st, co := median(m.Stream), median(m.Commit)
	return fmt.Sprintf("%-28s stream %6.2fs (%5.0f MB/s, runs %v)  commit %6.2fs (runs %v)  %.0f MB of tar",
		m.Name, st.Seconds(), mb/st.Seconds(), round(m.Stream), co.Seconds(), round(m.Commit), mb)
}

func round(ds []time.Duration) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%.2f", d.Seconds()))
	}
	return out
}

// Measure times, runs times each and interleaved, the stream alone and a
// full commit (without install) of slug with each prepare option.
func Measure(t *testing.T, e *Env, backend, slug string, runs int, methods map[string]bottle.PrepareOptions) []Timing {
	ctx := context.Background()
	rt := e.Manager.Runtimes[backend]
	names := make([]string, 0, len(methods))
	for n := range methods {
		names = append(names, n)
	}
	sort.Strings(names)
	res := map[string]*Timing{}
	for _, n := range names {
		res[n] = &Timing{Name: n}
	}
	for i := 0; i < runs; i++ {
		for _, n := range names {
			p, err := rt.Prepare(ctx, slug, methods[n])
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			rc, err := p.Source.Stream(ctx, snapshot.StreamRequest{Excludes: snapshot.DefaultExcludes})
			if err != nil {
				t.Fatal(err)
			}
			nb, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			res[n].Stream = append(res[n].Stream, time.Since(t0))
			res[n].Bytes = nb
			t1 := time.Now()
			if _, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{Backend: backend, Prepare: methods[n], NoLoad: true, Keep: -1}); err != nil {
				t.Fatal(err)
			}
			res[n].Commit = append(res[n].Commit, time.Since(t1))
		}
	}
	var out []Timing
	for _, n := range names {
		out = append(out, *res[n])
		t.Log(res[n].String())
	}
	return out
}
