package smolvm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/pack"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	kgzip "github.com/klauspost/compress/gzip"
)

// TestMeasureFlattenRestore compares, on a chain in an existing store
// (BB_MEASURE_STORE: its oci directory, BB_MEASURE_REF: the chain's tag),
// the host-side work a commit with pack adds to the store-only commit:
// the flattened layer and the restore tar, as bb made them before
// stitching (the merged tar compressed whole, then the chain read again
// for the restore) and now (stitched, restore from the tee). Wall and
// CPU time per round, rounds interleaved.
func TestMeasureFlattenRestore(t *testing.T) {
	dir, ref := os.Getenv("BB_MEASURE_STORE"), os.Getenv("BB_MEASURE_REF")
	if dir == "" || ref == "" {
		t.Skip("set BB_MEASURE_STORE and BB_MEASURE_REF to measure flattening a chain")
	}
	ctx := context.Background()
	s, err := oci.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	// BB_MEASURE_NOW_ONLY=1 times bb's flatten alone (a quicker A/B).
	nowOnly := os.Getenv("BB_MEASURE_NOW_ONLY") != ""
	stage := func(name string, fn func() error) {
		if nowOnly && !strings.HasPrefix(name, "now") {
			return
		}
		w, c := time.Now(), cpuTime()
		if err := fn(); err != nil {
			t.Fatal(name, err)
		}
		t.Logf("%-52s wall %6.2fs cpu %6.2fs", name, time.Since(w).Seconds(), (cpuTime() - c).Seconds())
	}
	for range 2 {
		// What any exact flatten must do at least: the diffID is the
		// SHA-256 of the new tar, and every byte after the first entry the
		// change hides differs in position, so the first layer is inflated
		// and hashed whole (SHA-256 states cannot be combined, unlike
		// CRC-32s).
		stage("floor: first layer inflated + SHA-256 of its tar", func() error {
			img, err := s.Image(ctx, d.Digest)
			if err != nil {
				return err
			}
			ls, err := img.Layers()
			if err != nil {
				return err
			}
			rc, err := ls[0].Compressed()
			if err != nil {
				return err
			}
			defer rc.Close()
			zr, err := kgzip.NewReader(bufio.NewReaderSize(rc, 256<<10))
			if err != nil {
				return err
			}
			_, err = io.Copy(sha256.New(), zr)
			return err
		})
		stage("before: merged tar compressed whole + restore read", func() error {
			rc, _, err := pack.Merged(ctx, s, d.Digest)
			if err != nil {
				return err
			}
			l, err := layer.Write(ctx, s, rc, layer.Options{})
			rc.Close()
			if err != nil {
				return err
			}
			if err := s.Discard(ctx, []v1.Hash{l.Descriptor().Digest}); err != nil {
				return err
			}
			_, err = buildRestore(ctx, s, d.Digest, filepath.Join(out, "read"))
			return err
		})
		stage("now: stitched, restore from the tee", func() error {
			var opts pack.Options
			tee := startRestoreTee(ctx, s, d.Digest, filepath.Join(out, "tee"), &opts)
			fl, err := pack.FlattenTee(ctx, s, d.Digest, layer.Options{}, opts.Tee)
			if tee != nil {
				if terr := tee.finish(filepath.Join(out, "tee"), err); terr != nil {
					return terr
				}
			}
			if err != nil {
				return err
			}
			t.Logf("copied %d MB of the first layer's tar compressed, compressed %d MB again", fl.Copied>>20, fl.Recompressed>>20)
			return s.Discard(ctx, fl.NewBlobs)
		})
		stage("now, plain tar (pack.Plain), restore from the tee", func() error {
			var opts pack.Options
			tee := startRestoreTee(ctx, s, d.Digest, filepath.Join(out, "tee"), &opts)
			fl, err := pack.FlattenTee(ctx, s, d.Digest, layer.Options{Compression: pack.Plain}, opts.Tee)
			if tee != nil {
				if terr := tee.finish(filepath.Join(out, "tee"), err); terr != nil {
					return terr
				}
			}
			if err != nil {
				return err
			}
			return s.Discard(ctx, fl.NewBlobs)
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
