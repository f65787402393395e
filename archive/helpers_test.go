package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/archive"
	dirbackend "github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	"golang.org/x/sys/unix"
)

// env is one host: a home with its state directory and store.
type env struct {
	home state.Home
	m    *bottle.Manager
}

func newEnv(t testing.TB) *env {
	t.Helper()
	home := state.Home{Dir: t.TempDir()}
	s, err := oci.Open(home.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{home: home, m: &bottle.Manager{
		Home: home, Store: s,
		Runtimes: map[string]bottle.Runtime{bottle.Dir: &dirbackend.Runtime{Home: home}},
	}}
}

// commit snapshots src as slug with the dir backend (bb commit --from-dir).
func (e *env) commit(t testing.TB, slug, src string) *bottle.CommitResult {
	t.Helper()
	if err := e.m.Runtimes[bottle.Dir].(*dirbackend.Runtime).Register(slug, src); err != nil {
		t.Fatal(err)
	}
	res, err := e.m.Commit(context.Background(), slug, bottle.CommitOptions{Backend: bottle.Dir})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// export writes refs to a byte slice.
func (e *env) export(t testing.TB, refs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := archive.Export(context.Background(), e.m.Store, &buf, refs, archive.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sourceTree makes a small bottle filesystem: text, random data, a
// symlink, a hard link, modes, an owner and an xattr.
func sourceTree(t testing.TB, randomBytes int) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "home/node/work"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "etc"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/hostname-base"), []byte("bottle\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "home/node/work/notes.md"), []byte("# work in progress\n"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "home/node/empty"), nil, 0o644))
	rnd := make([]byte, randomBytes)
	_, _ = rand.Read(rnd)
	must(os.WriteFile(filepath.Join(dir, "home/node/work/data.bin"), rnd, 0o644))
	must(os.Link(filepath.Join(dir, "home/node/work/data.bin"), filepath.Join(dir, "home/node/work/data.hardlink")))
	must(os.Symlink("work/notes.md", filepath.Join(dir, "home/node/notes")))
	must(os.WriteFile(filepath.Join(dir, "home/node/tool.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	if os.Geteuid() == 0 {
		must(os.Lchown(filepath.Join(dir, "home/node/work/notes.md"), 1000, 1000))
	}
	_ = unix.Setxattr(filepath.Join(dir, "home/node/tool.sh"), "user.bb-test", []byte("kept"), 0)
	return dir
}

// excluded are the paths a snapshot leaves out and a resume recreates.
var excluded = fstree.Under("tmp", "var", "proc", "sys", "dev", "run")

// sameTree fails the test if the trees under want and got differ.
func sameTree(t testing.TB, want, got string) {
	t.Helper()
	w, err := fstree.Walk(want, excluded)
	if err != nil {
		t.Fatal(err)
	}
	g, err := fstree.Walk(got, excluded)
	if err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(w, g); len(d) > 0 {
		t.Fatalf("trees differ:\n%s", strings.Join(d, "\n"))
	}
}

// storeState is what must not change when an import is refused.
type storeState struct {
	index  string
	blobs  []string
	states []string
}

func (e *env) state(t testing.TB) storeState {
	t.Helper()
	idx, err := os.ReadFile(filepath.Join(e.m.Store.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	st := storeState{index: string(idx)}
	ents, _ := os.ReadDir(filepath.Join(e.m.Store.Root(), "blobs/sha256"))
	for _, x := range ents {
		st.blobs = append(st.blobs, x.Name())
	}
	_ = filepath.WalkDir(filepath.Join(e.home.Dir, "state"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		b := []byte{}
		if !d.IsDir() {
			b, _ = os.ReadFile(p)
		}
		st.states = append(st.states, p+"="+string(b))
		return nil
	})
	sort.Strings(st.states)
	return st
}

// unchanged fails the test if the store or the state changed since
// before, or if temporary files were left.
func (e *env) unchanged(t testing.TB, before storeState) {
	t.Helper()
	after := e.state(t)
	if after.index != before.index {
		t.Errorf("store index.json changed:\n%s\n---\n%s", before.index, after.index)
	}
	if strings.Join(after.blobs, " ") != strings.Join(before.blobs, " ") {
		t.Errorf("store blobs changed:\nbefore %v\nafter  %v", before.blobs, after.blobs)
	}
	if strings.Join(after.states, "\n") != strings.Join(before.states, "\n") {
		t.Errorf("state changed:\nbefore %v\nafter  %v", before.states, after.states)
	}
	if files := storetest.IngestFiles(t, e.m.Store); len(files) > 0 {
		t.Errorf("temporary files left in the store: %v", files)
	}
}

// tarEntry is one entry of a hand-made archive.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

// entries splits an archive into its entries.
func entries(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: *h, data: data})
	}
}

// build writes entries as a tar; a header's Size follows its data.
func build(t testing.TB, ents []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// needTool skips the test when a command is missing, and fails it when
// env CI is set.
func needTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is needed (CI is set): %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
