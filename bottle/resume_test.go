package bottle_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// imageRuntime keeps loaded images by name, as Docker does: a load
// under a name replaces the image that had it.
type imageRuntime struct {
	fakeRuntime
	images map[string]string // ref -> what it holds (a manifest digest)
	loads  int
	booted string // what the last Boot booted
}

func (r *imageRuntime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	ref := state.CommittedRef(snap.Slug)
	r.images[ref] = snap.Manifest.Digest.String()
	r.loads++
	return ref, nil
}
func (r *imageRuntime) Has(ctx context.Context, c string) (bool, error) {
	_, ok := r.images[c]
	return ok, nil
}
func (r *imageRuntime) Boot(ctx context.Context, snap bottle.Snapshot, c string, o bottle.ResumeOptions) error {
	r.booted = r.images[c]
	return nil
}

func (r *imageRuntime) ImageID(ctx context.Context, c string) (string, error) {
	return r.images[c], nil
}

func newImageManager(t *testing.T) (*bottle.Manager, *imageRuntime) {
	home := t.TempDir()
	s, err := oci.Open(filepath.Join(home, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	rt := &imageRuntime{images: map[string]string{}}
	return &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}, rt
}

func commitTree(t *testing.T, m *bottle.Manager, rt *imageRuntime, slug, content string, noLoad bool) string {
	t.Helper()
	tr := tarOf(t, map[string]string{"home/a": content})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(tr)) }
	res, err := m.Commit(context.Background(), slug, bottle.CommitOptions{NoLoad: noLoad})
	if err != nil {
		t.Fatal(err)
	}
	return res.Digest
}

func TestResumeLoadsTheStoresLatestSnapshot(t *testing.T) {
	ctx := context.Background()
	for _, print := range []bool{false, true} {
		m, rt := newImageManager(t)
		a := commitTree(t, m, rt, "s", "A", false)
		b := commitTree(t, m, rt, "s", "B", true)
		if a == b || rt.images[state.CommittedRef("s")] != a {
			t.Fatalf("after commit --no-load: runtime holds %v (A %s, B %s)", rt.images, a, b)
		}
		ref, err := m.Resume(ctx, "s", bottle.ResumeRequest{PrintOnly: print})
		if err != nil {
			t.Fatal(err)
		}
		if ref != state.CommittedRef("s") || rt.images[ref] != b {
			t.Fatalf("print %v: resume gave %s holding %s, want B %s", print, ref, rt.images[ref], b)
		}
		if !print && rt.booted != b {
			t.Fatalf("booted %s, want B %s", rt.booted, b)
		}
		if rec, cur, err := m.Home.LoadedRecord("s"); err != nil || !cur || rec.Digest != b {
			t.Fatalf("record after resume: %+v %v %v", rec, cur, err)
		}
		// Once loaded, the next resume loads nothing.
		n := rt.loads
		if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil || rt.loads != n || rt.booted != b {
			t.Fatalf("second resume: loads %d -> %d, booted %s, %v", n, rt.loads, rt.booted, err)
		}
	}
}

func TestResumeKeepsAnotherToolsCommit(t *testing.T) {
	ctx := context.Background()
	m, rt := newImageManager(t)
	commitTree(t, m, rt, "s", "A", false)
	b := commitTree(t, m, rt, "s", "B", true)
	// The launcher commits the bottle under the same name and records it.
	ref := state.CommittedRef("s")
	rt.images[ref] = "launcher's commit"
	ci := filepath.Join(m.Home.StateDir("s"), state.CommittedImageFile)
	if err := os.WriteFile(ci, []byte(ref+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	_ = os.Chtimes(ci, later, later)
	n := rt.loads
	if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if rt.loads != n || rt.booted != "launcher's commit" || rt.images[ref] == b {
		t.Fatalf("loads %d -> %d, booted %q", n, rt.loads, rt.booted)
	}
	// What the warning advises to boot bb's snapshot instead.
	if err := os.Remove(ci); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil || rt.booted != b {
		t.Fatalf("after deleting committed-image: booted %q, want B %s (%v)", rt.booted, b, err)
	}
}

func TestResumeWithoutRecordBootsCommittedImage(t *testing.T) {
	ctx := context.Background()
	m, rt := newImageManager(t)
	a := commitTree(t, m, rt, "s", "A", false)
	commitTree(t, m, rt, "s", "B", true)
	// State of an older bb: no record.
	if err := os.Remove(filepath.Join(m.Home.StateDir("s"), state.LoadedFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil || rt.booted != a {
		t.Fatalf("booted %s (A %s), %v", rt.booted, a, err)
	}
}

func TestResumeLoadsAnAdoptedSnapshot(t *testing.T) {
	ctx := context.Background()
	m, rt := newImageManager(t)
	commitTree(t, m, rt, "s", "A", false)
	other := commitTree(t, m, rt, "t", "imported", true)
	desc, err := m.Store.Resolve(ctx, snapshot.Tag("t"))
	if err != nil || desc.Digest.String() != other {
		t.Fatal(desc, err)
	}
	if _, err := m.Adopt(ctx, "s", desc, bottle.AdoptOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil || rt.booted != other {
		t.Fatalf("booted %s, want the adopted %s: %v", rt.booted, other, err)
	}
}

// The launcher commits under the committed name (docker commit) and does
// not rewrite committed-image: the runtime's image ID tells.
func TestResumeKeepsAnImageReplacedUnderTheName(t *testing.T) {
	ctx := context.Background()
	m, rt := newImageManager(t)
	commitTree(t, m, rt, "s", "A", false)
	commitTree(t, m, rt, "s", "B", true)
	rt.images[state.CommittedRef("s")] = "launcher's commit"
	n := rt.loads
	if _, err := m.Resume(ctx, "s", bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if rt.loads != n || rt.booted != "launcher's commit" {
		t.Fatalf("loads %d -> %d, booted %q", n, rt.loads, rt.booted)
	}
}
