package archive_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/archive"
	dirbackend "github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/storetest"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// FuzzImport feeds arbitrary bytes to Import: it must never panic, never
// write outside its home (the store and the state), and whatever it
// refuses must leave no tag, no blob, no temporary file and no state.
// Seeds: the corpus in testdata/fuzz/FuzzImport (small hand-made
// layouts: gzip, zstd, nested indexes, a docker archive, a diffID
// mismatch) and a real export. The seeds are archives of several KiB,
// so cap minimization:
//
//	go test -run XXX -fuzz FuzzImport -fuzzminimizetime 200x ./archive
func FuzzImport(f *testing.F) {
	a := newEnv(f)
	a.commit(f, "demo", sourceTree(f, 512))
	valid := a.export(f, "demo")
	f.Add(valid)
	f.Add(valid[:len(valid)-1024])
	f.Add(build(f, without(without(without(entries(f, valid), "index.json"), "oci-layout"), "blobs/")))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(valid)
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		h := fuzzEnv(t)
		parent := filepath.Dir(h.home.Dir)
		_, err := h.m.Import(context.Background(), bytes.NewReader(data), bottle.ImportOptions{As: "fuzz", Backend: "dir", Force: true})
		if files := storetest.IngestFiles(t, h.m.Store); len(files) > 0 {
			t.Fatalf("temporary files left: %v", files)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("import wrote beside its home: %v", ents)
		}
		if err == nil {
			return
		}
		if idx, ierr := h.m.Store.Index(context.Background()); ierr != nil || len(idx.Manifests) > 0 {
			t.Fatalf("refused (%v) but left tags: %v %v", err, idx, ierr)
		}
		if ents, _ := os.ReadDir(filepath.Join(h.m.Store.Root(), "blobs/sha256")); len(ents) > 0 {
			t.Fatalf("refused (%v) but left %d blobs", err, len(ents))
		}
		if _, serr := os.Stat(filepath.Join(h.home.Dir, "state")); serr == nil {
			t.Fatalf("refused (%v) but wrote state", err)
		}
		if !errors.Is(err, archive.ErrInvalid) && !errors.Is(err, oci.ErrNotFound) {
			t.Logf("refused without ErrInvalid: %v", err)
		}
	})
}

// fuzzEnv is newEnv on tmpfs when there is one: the store syncs every
// blob it commits, which would make each run take milliseconds.
func fuzzEnv(t *testing.T) *env {
	parent, err := os.MkdirTemp("/dev/shm", "bb-fuzz-")
	if err != nil {
		parent = t.TempDir()
	} else {
		t.Cleanup(func() { os.RemoveAll(parent) })
	}
	home := state.Home{Dir: filepath.Join(parent, "home")}
	s, err := oci.Open(home.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	return &env{home: home, m: &bottle.Manager{
		Home: home, Store: s,
		Runtimes: map[string]bottle.Runtime{bottle.Dir: &dirbackend.Runtime{Home: home}},
	}}
}
