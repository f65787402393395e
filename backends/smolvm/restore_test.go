package smolvm

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/internal/testing/snaptest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestWriteRestore(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	x := map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.a": "b"}
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./private/", Mode: 0o700},
		{Typeflag: tar.TypeReg, Name: "./private/f", Mode: 0o644, Size: 1},
		{Typeflag: tar.TypeDir, Name: "./empty/", Mode: 0o700},
		{Typeflag: tar.TypeDir, Name: "./plain/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./plain/cap", Mode: 0o755, Size: 3, PAXRecords: x},
		{Typeflag: tar.TypeLink, Name: "./plain/cap2", Linkname: "./plain/cap"},
		{Typeflag: tar.TypeReg, Name: "./plain/nox", Mode: 0o644, Size: 2},
		{Typeflag: tar.TypeLink, Name: "./plain/nox2", Linkname: "plain/nox"},
		{Typeflag: tar.TypeDir, Name: "./sticky/", Mode: 0o1777},
		{Typeflag: tar.TypeSymlink, Name: "./sticky/l", Linkname: "x"},
		{Typeflag: tar.TypeDir, Name: "./xdir/", Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.user.d": "1"}},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	var out bytes.Buffer
	st, err := WriteRestore(context.Background(), &in, &out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "plain/cap" && (h.PAXRecords["SCHILY.xattr.security.capability"] == "" || h.Size != 3) {
			t.Errorf("cap entry: %+v", h)
		}
	}
	want := []string{"plain/cap", "plain/cap2", "private/", "sticky/", "xdir/"}
	if len(got) != len(want) {
		t.Fatalf("restore tar holds %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("restore tar holds %q, want %q", got, want)
		}
	}
	if st.Dirs != 3 || st.Entries != 2 || st.Bytes != 3 {
		t.Errorf("stats %+v", st)
	}
}

// TestRestoreTeeMatches: the restore tar made from the flattened tar as
// Pack makes it is the one made by reading the chain again.
func TestRestoreTeeMatches(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	commit := func() v1.Hash {
		time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
		res, err := snaptest.Commit(ctx, s, snapshot.Request{Slug: "tee", Backend: "dir", Source: &dir.Source{Dir: root, OneFS: true}}, -1)
		must(err)
		return res.Manifest.Digest
	}
	must(os.MkdirAll(filepath.Join(root, "private/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "private/sub/f"), []byte("f"), 0o644))
	must(os.Chmod(filepath.Join(root, "private"), 0o700))
	commit()
	must(os.Mkdir(filepath.Join(root, "sticky"), 0o755))
	must(os.WriteFile(filepath.Join(root, "sticky/g"), []byte("g"), 0o644))
	must(os.Chmod(filepath.Join(root, "sticky"), 0o1777))
	must(os.Chmod(filepath.Join(root, "private/sub"), 0o2750))
	m := commit()
	out := t.TempDir()
	var opts pack.Options
	tee := startRestoreTee(ctx, s, m, filepath.Join(out, "tee"), &opts)
	if tee == nil || opts.Tee == nil {
		t.Fatal("no tee for a chain")
	}
	_, ferr := pack.FlattenTee(ctx, s, m, layer.Options{}, opts.Tee)
	must(tee.finish(filepath.Join(out, "tee"), ferr))
	st, err := buildRestore(ctx, s, m, filepath.Join(out, "read"))
	must(err)
	// private and sticky; private/sub comes after its child in the
	// flattened tar, so smolvm's unpacking keeps its mode.
	if st.Dirs != 2 {
		t.Errorf("restore of %d directories, want 2", st.Dirs)
	}
	a, err := os.ReadFile(filepath.Join(out, "tee"))
	must(err)
	b, err := os.ReadFile(filepath.Join(out, "read"))
	must(err)
	if !bytes.Equal(a, b) {
		t.Fatalf("restore tar from the tee (%d bytes) differs from the one read from the chain (%d bytes)", len(a), len(b))
	}
}
