package pack_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/packserve"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// chain commits a directory three times (incremental: whiteouts, an
// opaque directory, a directory replaced by a file) and returns the last
// snapshot.
func chain(t *testing.T, s *oci.Store) (v1.Descriptor, string) {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	w := func(p, c string) {
		must(os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	commit := func() v1.Descriptor {
		time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
		res, err := snaptest.Commit(context.Background(), s, snapshot.Request{Slug: "flat", Backend: "dir", Source: &dir.Source{Dir: root, OneFS: true}}, -1)
		must(err)
		return res.Manifest
	}
	w("a/keep", "keep")
	w("a/gone", "gone")
	w("b/old", "old")
	w("c/child", "child")
	w("d/x", "x")
	must(os.Link(filepath.Join(root, "d/x"), filepath.Join(root, "d/y")))
	commit()
	must(os.Remove(filepath.Join(root, "a/gone")))
	must(os.RemoveAll(filepath.Join(root, "b")))
	w("b/new", "new")
	must(os.RemoveAll(filepath.Join(root, "c")))
	w("c", "now a file")
	commit()
	w("d/x", "rewritten through a hard link")
	w("e/f", "added")
	return commit(), root
}

func TestFlattenChain(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	desc, root := chain(t, s)
	img, err := s.Image(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := img.Layers(); len(ls) != 3 {
		t.Fatalf("chain has %d layers, want 3", len(ls))
	}
	fl, err := pack.Flatten(ctx, s, desc.Digest, layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	flat, err := s.Image(ctx, fl.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := flat.Layers()
	if len(ls) != 1 {
		t.Fatalf("flattened image has %d layers", len(ls))
	}
	if cf, _ := flat.ConfigFile(); len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("flattened config has %d diffIDs", len(cf.RootFS.DiffIDs))
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := rootfs.ExtractImage(ctx, flat, out, rootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	rc, _ := ls[0].Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	for h, err := tr.Next(); err == nil; h, err = tr.Next() {
		if strings.Contains(h.Name, ".wh.") {
			t.Errorf("flattened layer keeps whiteout %s", h.Name)
		}
	}
	skip := func(p string) bool { return p == "tmp" || strings.HasPrefix(p, "tmp/") }
	want, err := fstree.Walk(root, skip)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fstree.Walk(out, skip)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(want, got); len(d) > 0 {
		t.Fatalf("flattened tree differs:\n%s", strings.Join(d, "\n"))
	}
	if err := s.Discard(ctx, fl.NewBlobs); err != nil {
		t.Fatal(err)
	}
	// bb hands smolvm pack the flattened image of a chain
	if _, err := pack.Pack(ctx, s, desc, "flat", filepath.Join(t.TempDir(), "out"), opts(packserve.Serve)); err != nil {
		t.Fatal(err)
	}
}

// TestFlattenReusesBlocks: on a first layer of several gzip blocks, the
// flattened layer copies the compressed blocks the upper layer leaves
// alone, compresses again the ones it cuts into, and still extracts to
// exactly the live tree; its gzip trailer and diffID are those of what
// it decompresses to.
func TestFlattenReusesBlocks(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(7, 7))
	w := func(p string, n int, text bool) {
		must(os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		b := make([]byte, n)
		for i := range b {
			if text {
				b[i] = "abcdefgh ijklmnop\n"[r.IntN(18)]
			} else {
				b[i] = byte(r.Uint32())
			}
		}
		must(os.WriteFile(filepath.Join(root, p), b, 0o644))
	}
	for i := range 6 {
		w(fmt.Sprintf("bin/b%d", i), 900<<10+i*1000, false)
	}
	for i := range 400 {
		w(fmt.Sprintf("src/d%02d/f%03d.txt", i/40, i), 2000+r.IntN(6000), true)
	}
	for i := 6; i < 10; i++ {
		w(fmt.Sprintf("bin/b%d", i), 700<<10, false)
	}
	commit := func() v1.Descriptor {
		time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
		res, err := snaptest.Commit(ctx, s, snapshot.Request{Slug: "reuse", Backend: "dir", Source: &dir.Source{Dir: root, OneFS: true}}, -1)
		must(err)
		return res.Manifest
	}
	commit()
	w("src/d05/f210.txt", 3000, true)              // rewritten, mid-layer
	must(os.Remove(filepath.Join(root, "bin/b2"))) // deleted
	must(os.Remove(filepath.Join(root, "src/d09/f390.txt")))
	must(os.Chmod(filepath.Join(root, "src/d07"), 0o700))
	w("work/new", 5000, true)
	desc := commit()
	fl, err := pack.Flatten(ctx, s, desc.Digest, layer.Options{})
	must(err)
	defer func() { must(s.Discard(ctx, fl.NewBlobs)) }()
	t.Logf("copied %d bytes compressed, compressed %d again", fl.Copied, fl.Recompressed)
	if fl.Copied < 4<<20 || fl.Recompressed == 0 {
		t.Errorf("copied %d, recompressed %d: want most blocks copied and the cut ones compressed again", fl.Copied, fl.Recompressed)
	}
	flat, err := s.Image(ctx, fl.Manifest.Digest)
	must(err)
	ls, _ := flat.Layers()
	cf, err := flat.ConfigFile()
	must(err)
	// The standard library's gzip reader checks the trailer's CRC-32 and size.
	rc, err := ls[0].Compressed()
	must(err)
	zr, err := gzip.NewReader(rc)
	must(err)
	h := sha256.New()
	_, err = io.Copy(h, zr)
	must(err)
	rc.Close()
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != cf.RootFS.DiffIDs[0].String() {
		t.Fatalf("flattened layer decompresses to %s, config says %s", got, cf.RootFS.DiffIDs[0])
	}
	out := filepath.Join(t.TempDir(), "x")
	must(rootfs.ExtractImage(ctx, flat, out, rootfs.Options{}))
	skip := func(p string) bool { return p == "tmp" || strings.HasPrefix(p, "tmp/") }
	want, err := fstree.Walk(root, skip)
	must(err)
	got, err := fstree.Walk(out, skip)
	must(err)
	if d := fstree.Diff(want, got); len(d) > 0 {
		t.Fatalf("flattened tree differs:\n%s", strings.Join(d, "\n"))
	}
}

// TestFlattenPlain: a chain flattened as a plain tar (pack.Plain) holds
// the live tree, its digest is its diffID, the tee got the same bytes,
// and smolvm's pack (the stand-in sniffs the first bytes as smolvm does)
// unpacks it.
func TestFlattenPlain(t *testing.T) {
	s := setup(t)
	ctx := context.Background()
	desc, root := chain(t, s)
	var tee strings.Builder
	fl, err := pack.FlattenTee(ctx, s, desc.Digest, layer.Options{Compression: pack.Plain}, &tee)
	if err != nil {
		t.Fatal(err)
	}
	flat, err := s.Image(ctx, fl.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := flat.Layers()
	cf, _ := flat.ConfigFile()
	if len(ls) != 1 || len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("flattened image has %d layers, %d diffIDs", len(ls), len(cf.RootFS.DiffIDs))
	}
	mt, _ := ls[0].MediaType()
	dg, _ := ls[0].Digest()
	if mt != "application/vnd.oci.image.layer.v1.tar" || dg != cf.RootFS.DiffIDs[0] {
		t.Fatalf("layer %s %s, diffID %s: want a plain tar whose digest is its diffID", mt, dg, cf.RootFS.DiffIDs[0])
	}
	raw, err := s.ReadBlob(ctx, dg, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := v1.SHA256(strings.NewReader(string(raw))); h != dg || string(raw) != tee.String() {
		t.Fatalf("blob hashes to %s (digest %s); tee %d bytes, blob %d", h, dg, tee.Len(), len(raw))
	}
	out := filepath.Join(t.TempDir(), "x")
	if err := rootfs.ExtractImage(ctx, flat, out, rootfs.Options{}); err != nil {
		t.Fatal(err)
	}
	skip := func(p string) bool { return p == "tmp" || strings.HasPrefix(p, "tmp/") }
	want, err := fstree.Walk(root, skip)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fstree.Walk(out, skip)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(want, got); len(d) > 0 {
		t.Fatalf("flattened tree differs:\n%s", strings.Join(d, "\n"))
	}
	if err := s.Discard(ctx, fl.NewBlobs); err != nil {
		t.Fatal(err)
	}
	o := opts(packserve.Serve)
	o.Layer.Compression = pack.Plain
	art, err := pack.Pack(ctx, s, desc, "flat", filepath.Join(t.TempDir(), "out"), o)
	if err != nil {
		t.Fatal(err)
	}
	names := artifactNames(t, art)
	if !names["a/keep"] || names["a/gone"] || !names["e/f"] {
		t.Fatalf("the pack of the plain layer holds %v", names)
	}
}
