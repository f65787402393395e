package bottle_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/storetest"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// fakeRuntime injects failures around a real tar stream.
type fakeRuntime struct {
	stream     func() io.ReadCloser
	installErr error
	installed  []string
}

func (f *fakeRuntime) Name() string { return "fake" }
func (f *fakeRuntime) List(ctx context.Context) ([]bottle.Info, error) {
	return []bottle.Info{{Slug: "s", Name: "bot-bottle-s", Backend: "fake", Running: true}}, nil
}
func (f *fakeRuntime) Inspect(ctx context.Context, slug string) (*bottle.Info, error) {
	return &bottle.Info{Slug: slug, Name: bottle.Name(slug), Backend: "fake", Running: true}, nil
}
func (f *fakeRuntime) Prepare(ctx context.Context, slug string, opts bottle.PrepareOptions) (*bottle.Prepared, error) {
	return &bottle.Prepared{Source: sourceFunc(f.stream)}, nil
}
func (f *fakeRuntime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	if f.installErr != nil {
		return "", f.installErr
	}
	f.installed = append(f.installed, snap.Manifest.Digest.String())
	return state.CommittedRef(snap.Slug), nil
}
func (f *fakeRuntime) Has(ctx context.Context, c string) (bool, error) { return false, nil }
func (f *fakeRuntime) Boot(ctx context.Context, snap bottle.Snapshot, c string, o bottle.ResumeOptions) error {
	return nil
}

type sourceFunc func() io.ReadCloser

func (s sourceFunc) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	return s(), nil
}

func tarOf(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for n, c := range files {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(c))})
		tw.Write([]byte(c))
	}
	tw.Close()
	return b.Bytes()
}

// failingReader yields b, then err instead of EOF (as a tar exiting 2 does).
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}
func (f *failingReader) Close() error { return nil }

type snap struct {
	index     []byte
	blobs     []string
	committed string
}

func capture(t *testing.T, home, store string) snap {
	idx, _ := os.ReadFile(filepath.Join(store, "index.json"))
	ents, _ := os.ReadDir(filepath.Join(store, "blobs/sha256"))
	var blobs []string
	for _, e := range ents {
		blobs = append(blobs, e.Name())
	}
	c, _ := os.ReadFile(filepath.Join(home, "state/s/committed-image"))
	return snap{idx, blobs, string(c)}
}

func TestFailedCommitLeavesEverythingAsItWas(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	storeDir := filepath.Join(home, "oci")
	s, _ := oci.Open(storeDir)
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	good := tarOf(t, map[string]string{"home/a": "first"})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(good)) }
	if _, err := m.Commit(ctx, "s", bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	before := capture(t, home, storeDir)
	if before.committed != "bot-bottle-committed-s:latest\n" {
		t.Fatalf("committed-image = %q", before.committed)
	}
	next := tarOf(t, map[string]string{"home/a": "second", "home/b": strings.Repeat("x", 1<<20)})
	cases := []struct {
		name   string
		stream func() io.ReadCloser
		load   error
		stage  snapshot.Stage
	}{
		{"tar exits 2", func() io.ReadCloser {
			return &failingReader{bytes.NewReader(next[:len(next)/2]), errors.New("tar exited with status 2")}
		}, nil, snapshot.StageStream},
		{"bottle removed mid-stream", func() io.ReadCloser {
			return &failingReader{bytes.NewReader(next[:700]), errors.New("container bot-bottle-s removed")}
		}, nil, snapshot.StageStream},
		{"escaping entry", func() io.ReadCloser {
			return io.NopCloser(bytes.NewReader(tarOf(t, map[string]string{"../evil": "x"})))
		}, nil, snapshot.StageFilter},
		{"load refused", func() io.ReadCloser { return io.NopCloser(bytes.NewReader(next)) },
			errors.New("daemon: invalid tar header"), snapshot.StageLoad},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt.stream, rt.installErr = c.stream, c.load
			_, err := m.Commit(ctx, "s", bottle.CommitOptions{})
			var se *snapshot.Error
			if !errors.As(err, &se) || se.Stage != c.stage {
				t.Fatalf("err = %v, want stage %s", err, c.stage)
			}
			if !strings.Contains(err.Error(), string(c.stage)) {
				t.Errorf("message does not name the stage: %v", err)
			}
			after := capture(t, home, storeDir)
			if !reflect.DeepEqual(before, after) {
				t.Errorf("state changed:\nbefore %+v\nafter  %+v", before, after)
			}
			if files := storetest.IngestFiles(t, s); len(files) != 0 {
				t.Errorf("temp files left: %v", files)
			}
		})
	}
}

func TestResumeReinstallsFromStore(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, _ := oci.Open(filepath.Join(home, "oci"))
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	data := tarOf(t, map[string]string{"a": "b"})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
	res, err := m.Commit(ctx, "s", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := m.Resume(ctx, "s", bottle.ResumeRequest{PrintOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if ref != "bot-bottle-committed-s:latest" || len(rt.installed) != 2 || rt.installed[1] != res.Digest {
		t.Fatalf("resume did not reinstall: %q %v", ref, rt.installed)
	}
	if _, err := m.Resume(ctx, "nope", bottle.ResumeRequest{}); err == nil || !strings.Contains(err.Error(), "bb commit nope") {
		t.Fatalf("resume of unknown slug: %v", err)
	}
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, _ := oci.Open(filepath.Join(home, "oci"))
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	var results []*bottle.CommitResult
	for i := 0; i < 2; i++ {
		data := tarOf(t, map[string]string{"a": strings.Repeat("v", i+1)})
		rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
		r, err := m.Commit(ctx, "s", bottle.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	if _, err := m.Remove(ctx, results[1].Snapshot.TimeTag); err == nil {
		t.Fatal("removing the current snapshot's time tag was allowed")
	}
	removed, err := m.Remove(ctx, results[0].Snapshot.TimeTag)
	if err != nil || len(removed) != 1 {
		t.Fatalf("remove old: %v %v", removed, err)
	}
	removed, err = m.Remove(ctx, "s")
	if err != nil || len(removed) != 2 {
		t.Fatalf("remove slug: %v %v", removed, err)
	}
	if entries, _ := snapshot.List(ctx, s, "s"); len(entries) != 0 {
		t.Fatalf("entries left: %v", entries)
	}
}

// A failure after the snapshot is tagged (writing committed-image) gives
// the slug its previous snapshot back and removes the new blobs.
func TestFailedRecordRestoresPreviousSnapshot(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	storeDir := filepath.Join(home, "oci")
	s, _ := oci.Open(storeDir)
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	first := tarOf(t, map[string]string{"home/a": "first"})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(first)) }
	if _, err := m.Commit(ctx, "s", bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	before := capture(t, home, storeDir)
	// committed-image cannot be replaced: a directory is in its place.
	ci := filepath.Join(home, "state/s/committed-image")
	if err := os.Remove(ci); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(ci, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	second := tarOf(t, map[string]string{"home/a": "second"})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(second)) }
	_, err := m.Commit(ctx, "s", bottle.CommitOptions{})
	var se *snapshot.Error
	if !errors.As(err, &se) || se.Stage != snapshot.StageRecord {
		t.Fatalf("err = %v, want stage %s", err, snapshot.StageRecord)
	}
	after := capture(t, home, storeDir)
	if !bytes.Equal(before.index, after.index) || !reflect.DeepEqual(before.blobs, after.blobs) {
		t.Errorf("store changed:\nbefore %s %v\nafter  %s %v", before.index, before.blobs, after.index, after.blobs)
	}
}
