//go:build linux

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/snapshot"
	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"
	"io/fs"
	"strings"
)

// TestHostTarNeverFollowsLinks streams paths from a tree in which the
// bottle planted symlinks to the host: entries below a symlink are
// skipped, symlinks are written as such, and nothing outside the tree is
// read.
func TestHostTarNeverFollowsLinks(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "d/e"), 0o755))
	must(os.WriteFile(filepath.Join(root, "d/e/f"), []byte("content"), 0o640))
	must(os.Link(filepath.Join(root, "d/e/f"), filepath.Join(root, "d/g")))
	must(os.Symlink(outside, filepath.Join(root, "evil")))
	must(os.Symlink(filepath.Join(outside, "secret"), filepath.Join(root, "d/secret-link")))
	must(unix.Mkfifo(filepath.Join(root, "d/fifo"), 0o600))
	must(os.WriteFile(filepath.Join(root, "d/empty"), nil, 0o644))
	_ = unix.Setxattr(filepath.Join(root, "d/e/f"), "user.bb", []byte("x"), 0) // tmpfs may refuse user xattrs

	paths := []string{"d", "d/e", "d/e/f", "d/empty", "d/fifo", "d/g", "d/gone", "d/secret-link", "evil", "evil/secret"}
	ok := func(context.Context) error { return nil }
	rc, err := startHostTar(context.Background(), root, paths, ok)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if string(b) == "host secret" {
			t.Errorf("%s carries a file from outside the tree", h.Name)
		}
		got[h.Name] = h
	}
	rc.Close()
	want := map[string]byte{"./d/": tar.TypeDir, "./d/e/": tar.TypeDir, "./d/e/f": tar.TypeReg, "./d/empty": tar.TypeReg,
		"./d/fifo": tar.TypeFifo, "./d/g": tar.TypeLink, "./d/secret-link": tar.TypeSymlink, "./evil": tar.TypeSymlink}
	for n, typ := range want {
		if h := got[n]; h == nil || h.Typeflag != typ {
			t.Errorf("%s: %+v, want type %c", n, h, typ)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	if h := got["./d/g"]; h != nil && h.Linkname != "./d/e/f" {
		t.Errorf("hard link to %q", h.Linkname)
	}
	if h := got["./d/e/f"]; h != nil && (h.Size != 7 || h.Mode != 0o640) {
		t.Errorf("d/e/f: size %d mode %o", h.Size, h.Mode)
	}

	// A failed check at the end fails the stream.
	rc, err = startHostTar(context.Background(), root, paths, func(context.Context) error { return errors.New("bottle gone") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, rc); err == nil || err.Error() != "bottle gone" {
		t.Errorf("stream with a failed check: %v", err)
	}
	rc.Close()
}

// A file replaced between its stat and its open is left out ("changed as
// we read it"); a later hard link of the inode first stated must then be
// archived as a file, not as a link to the path left out (which the
// filter drops as dangling: the link would vanish from the snapshot).
func TestHostTarLinkToSkippedFile(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "a"), []byte("shared"), 0o644))
	must(os.Link(filepath.Join(root, "a"), filepath.Join(root, "b")))
	must(os.Link(filepath.Join(root, "a"), filepath.Join(root, "z")))
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	var buf bytes.Buffer
	h := &hostTar{root: rfd, tw: tar.NewWriter(&buf), links: map[[2]uint64]string{}, buf: make([]byte, 64<<10), xbuf: make([]byte, 64<<10), vbuf: make([]byte, 64<<10)}
	defer h.close()
	// The entry of "a", with the bottle replacing "a" between the stat
	// and the open (what entry does, split at that point).
	var st unix.Stat_t
	must(unix.Fstatat(rfd, "a", &st, unix.AT_SYMLINK_NOFOLLOW))
	h.links[[2]uint64{st.Dev, st.Ino}] = "a"
	must(os.Remove(filepath.Join(root, "a")))
	must(os.WriteFile(filepath.Join(root, "a"), []byte("new"), 0o644))
	must(h.file(rfd, "a", &tar.Header{Name: "./a"}, &st))
	must(h.entry(rfd, "b", "b"))
	must(h.tw.Close())
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(err)
		if hdr.Name == "./b" && hdr.Typeflag != tar.TypeReg {
			t.Errorf("b is written as type %c to %q, which the stream does not carry", hdr.Typeflag, hdr.Linkname)
		}
	}
}

// The early load's plan (plannedTarSize, a dry run over the headers) is
// the size of the stream a real read of the same tree gives, for the
// names and entries a bottle can make: newlines and invalid UTF-8 in
// names, names longer than a tar header holds, hard links, symlinks,
// FIFOs, empty files and large xattrs.
func TestPlannedTarSizeMatchesStream(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	long := strings.Repeat("d", 150)
	must(os.MkdirAll(filepath.Join(root, "w", long), 0o755))
	files := map[string]int{"w/new\nline": 3, "w/bad-\xff\xfe": 700, "w/" + long + "/" + strings.Repeat("f", 200): 513, "w/empty": 0, "w/big": 1 << 20}
	for n, size := range files {
		must(os.WriteFile(filepath.Join(root, n), bytes.Repeat([]byte("x"), size), 0o644))
	}
	must(os.Link(filepath.Join(root, "w/big"), filepath.Join(root, "w/big-link")))
	must(os.Symlink("new\nline", filepath.Join(root, "w/sym")))
	must(unix.Mkfifo(filepath.Join(root, "w/fifo"), 0o600))
	_ = unix.Setxattr(filepath.Join(root, "w/big"), "user.big", bytes.Repeat([]byte("v"), 3000), 0) // tmpfs may refuse user xattrs
	var changes []container.FilesystemChange
	must(filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		changes = append(changes, container.FilesystemChange{Path: strings.TrimPrefix(p, root), Kind: container.ChangeAdd})
		return nil
	}))
	pl := newPlan(changes, nil, nil)
	ctx := context.Background()
	planned, err := plannedTarSize(ctx, root, pl, nil)
	must(err)
	hs, err := startHostTar(ctx, root, pl.paths, func(context.Context) error { return nil })
	must(err)
	rs := newRewriteStream(hs, pl, false)
	defer rs.Close()
	var out countingWriter
	if _, err := snapshot.Filter(rs, &out, snapshot.FilterOptions{}); err != nil {
		t.Fatal(err)
	}
	if out.n != planned {
		t.Errorf("planned %d bytes, the stream has %d", planned, out.n)
	}
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// A directory the bottle swaps for a symlink to a host path between two
// of its entries: the entries after the swap come from the directory
// still open (the bottle's own, renamed) or are skipped; nothing is read
// through the symlink.
func TestHostTarDirectorySwappedMidRead(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"b", "c"} {
		must(os.WriteFile(filepath.Join(outside, n), []byte("host secret"), 0o600))
	}
	must(os.MkdirAll(filepath.Join(root, "d"), 0o755))
	must(os.MkdirAll(filepath.Join(root, "e"), 0o755))
	for _, n := range []string{"a", "b", "c"} {
		must(os.WriteFile(filepath.Join(root, "d", n), []byte("bottle"), 0o644))
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(err)
	var buf bytes.Buffer
	h := &hostTar{root: rfd, tw: tar.NewWriter(&buf), links: map[[2]uint64]string{}, buf: make([]byte, 64<<10), xbuf: make([]byte, 64<<10), vbuf: make([]byte, 64<<10)}
	defer h.close()
	ctx := context.Background()
	must(h.write(ctx, []string{"d", "d/a"}))
	must(os.Rename(filepath.Join(root, "d"), filepath.Join(root, "moved")))
	must(os.Symlink(outside, filepath.Join(root, "d")))
	// d/b with d still open, d/c after e made the reader let go of it.
	must(h.write(ctx, []string{"d/b", "e", "d/c"}))
	must(h.tw.Close())
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		must(err)
		b, _ := io.ReadAll(tr)
		if string(b) == "host secret" {
			t.Errorf("%s was read through the symlink that replaced d", hdr.Name)
		}
	}
}
