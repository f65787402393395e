package snapshot_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/fileindex"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
)

// lister is a bottle that lists itself as told (a find replaced by the
// agent) and streams whatever paths it is asked for as empty entries.
type lister struct {
	listing []byte
}

func (l *lister) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	return files{"f": "full"}.Stream(ctx, req)
}

func (l *lister) List(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.listing)), nil
}

func (l *lister) StreamPaths(ctx context.Context, req snapshot.StreamRequest, paths []string) (io.ReadCloser, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		_ = tw.WriteHeader(&tar.Header{Name: "./" + p, Typeflag: tar.TypeReg, Mode: 0o644})
	}
	_ = tw.Close()
	return io.NopCloser(&buf), nil
}

func hostileListing(t time.Time, paths ...string) []byte {
	b := []byte(fileindex.Header(t))
	for i, p := range paths {
		b = fileindex.AppendRecord(b, &fileindex.Entry{Type: 'd', Mode: 0o755, Mtime: fileindex.Time{Sec: 100}, Ctime: fileindex.Time{Sec: 100}, Ino: uint64(i + 2), Nlink: 2, Path: p})
	}
	return b
}

// layerNames returns the entry names of the snapshot's top layer.
func layerNames(t *testing.T, s *oci.Store, res *snapshot.Result) []string {
	t.Helper()
	f, err := s.Blob(context.Background(), res.Layer.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// A bottle that lists paths with ".", ".." or empty components (the
// agent replaced find) gets a full snapshot: those paths never become
// entries or whiteouts of a layer (a ".wh.." whiteout names the
// directory's parent), and the commit does not fail on them.
func TestHostileListingPaths(t *testing.T) {
	ctx := context.Background()
	for name, bad := range map[string][]string{
		"dot deleted":    {"a", "a/."},
		"dotdot deleted": {"a", "a/b/.."},
		"empty deleted":  {"a", "a//b"},
		"dotdot added":   {"a", "a/../../x"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := oci.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().Add(-time.Hour)
			// The hostile path is in the first listing (deleted at the
			// second commit) or in the second one (added).
			first, second := bad, []string{"a"}
			if strings.HasSuffix(name, "added") {
				first, second = []string{"a"}, bad
			}
			l := &lister{listing: hostileListing(t0, first...)}
			req := snapshot.Request{Slug: "hostile", Backend: "dir", SourceName: "test", Source: l, Now: t0}
			r1, err := snapshot.Build(ctx, s, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := snapshot.Publish(ctx, s, r1, -1); err != nil {
				t.Fatal(err)
			}
			l.listing = hostileListing(t0.Add(time.Minute), second...)
			req.Source, req.Now = l, t0.Add(time.Minute)
			r2, err := snapshot.Build(ctx, s, req)
			if err != nil {
				t.Fatalf("the commit failed on a hostile listing: %v", err)
			}
			for _, n := range layerNames(t, s, r2) {
				for _, c := range strings.Split(strings.Trim(strings.TrimPrefix(n, "./"), "/"), "/") {
					if c == "" || c == "." || c == ".." || c == ".wh.." || c == ".wh." {
						t.Errorf("layer entry %q", n)
					}
				}
			}
		})
	}
}

// The previous snapshot's file index is read as stored, and what it says
// decides what the next commit streams: an index whose blob was replaced
// (edited in the store, by a valid gzip listing that hides a change) is
// not believed: the commit is a full one.
func TestDamagedIndexIsNotBelieved(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	file := func(ctime int64) fileindex.Entry {
		return fileindex.Entry{Type: 'f', Mode: 0o644, Size: 4, Mtime: fileindex.Time{Sec: 100}, Ctime: fileindex.Time{Sec: ctime}, Ino: 7, Nlink: 1, Path: "f"}
	}
	listingOf := func(at time.Time, e fileindex.Entry) []byte {
		return fileindex.AppendRecord([]byte(fileindex.Header(at)), &e)
	}
	l := &lister{listing: listingOf(t0, file(100))}
	req := snapshot.Request{Slug: "damaged", Backend: "dir", SourceName: "test", Source: l, Now: t0}
	r1, err := snapshot.Build(ctx, s, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.Publish(ctx, s, r1, -1); err != nil {
		t.Fatal(err)
	}
	// f is rewritten (its ctime moves); the stored index is replaced by
	// one that already has the new ctime.
	cur := listingOf(t0.Add(time.Minute), file(200))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(cur)
	_ = zw.Close()
	p := s.BlobPath(r1.Index.Digest)
	_ = os.Chmod(p, 0o600)
	if err := os.WriteFile(p, gz.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	l.listing = cur
	req.Now = t0.Add(time.Minute)
	r2, err := snapshot.Build(ctx, s, req)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Incremental != nil && r2.Incremental.Parent != "" {
		t.Errorf("the commit believed a replaced file index: %+v, layer %q", r2.Incremental, layerNames(t, s, r2))
	}
}

// Only a file index bb recorded steers a commit: a manifest pushed into
// bb serve with the file index's artifactType and the snapshot as its
// subject (as a referrer, or by tag) is not one, and the next commit of
// a snapshot that has no index of its own is a full one.
func TestPushedFileIndexIsNotBelieved(t *testing.T) {
	for _, how := range []string{"referrer", "tag"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			s, err := oci.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t0 := time.Now().Add(-time.Hour)
			r1, err := snapshot.Build(ctx, s, snapshot.Request{Slug: "pushed", Backend: "dir", SourceName: "test", Source: files{"f": "x"}, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			if err := snapshot.Publish(ctx, s, r1, -1); err != nil {
				t.Fatal(err)
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			_, _ = zw.Write(hostileListing(t0, "elsewhere"))
			_ = zw.Close()
			blob, err := s.PutBytes(ctx, snapshot.IndexMediaType, gz.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if err := snapshot.PutIndex(ctx, s, "pushed", r1.Manifest, blob); err != nil {
				t.Fatal(err)
			}
			// What bb serve records for such a manifest: the artifactType
			// and the subject annotation; pushed by tag, also the slug of
			// the repository and the tag.
			err = s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
				for i, e := range idx.Manifests {
					if e.ArtifactType == snapshot.IndexArtifactType {
						a := map[string]string{oci.SubjectAnnotation: e.Annotations[oci.SubjectAnnotation]}
						if how == "tag" {
							a[oci.SlugAnnotation], a[oci.RefNameAnnotation] = "pusher", "pusher-v1"
						}
						idx.Manifests[i].Annotations = a
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			l := &lister{listing: hostileListing(t0.Add(time.Minute), "a")}
			r2, err := snapshot.Build(ctx, s, snapshot.Request{Slug: "pushed", Backend: "dir", SourceName: "test", Source: l, Now: t0.Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			if r2.Incremental == nil || r2.Incremental.Parent != "" {
				t.Errorf("the commit used a file index bb did not record: %+v", r2.Incremental)
			}
		})
	}
}

// A listing that would make the comparison hold more than its bound (the
// bottle's word: a fabricated find output of millions of entries) gives a
// full snapshot with a warning, not an out-of-memory bb; its listing is
// still stored, so the next commit is incremental again.
func TestListingOverTheBoundIsFull(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour)
	paths := make([]string, 2000)
	for i := range paths {
		paths[i] = fmt.Sprintf("dir%04d", i)
	}
	l := &lister{listing: hostileListing(t0, "a")}
	req := snapshot.Request{Slug: "bound", Backend: "dir", SourceName: "test", Source: l, Now: t0}
	commit := func(at time.Time, listed ...string) *snapshot.Result {
		t.Helper()
		l.listing = hostileListing(at, listed...)
		req.Source, req.Now = l, at
		r, err := snapshot.Build(ctx, s, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := snapshot.Publish(ctx, s, r, -1); err != nil {
			t.Fatal(err)
		}
		return r
	}
	commit(t0, "a")
	defer snapshot.SetPlanMemory(96 << 10)()
	r := commit(t0.Add(time.Minute), paths...)
	if r.Incremental == nil || r.Incremental.Parent != "" || !strings.Contains(r.Incremental.Full, "would hold more than") {
		t.Fatalf("over the bound: incremental %+v, want a full snapshot saying why", r.Incremental)
	}
	if r.Incremental.Entries != len(paths) {
		t.Errorf("entries %d, want %d", r.Incremental.Entries, len(paths))
	}
	if !slices.ContainsFunc(r.Warnings, func(w string) bool { return strings.Contains(w, "full snapshot") }) {
		t.Errorf("warnings %q: want the reason", r.Warnings)
	}
	r = commit(t0.Add(2*time.Minute), append(paths, "new")...)
	if r.Incremental == nil || r.Incremental.Parent == "" || r.Incremental.Added != 1 {
		t.Fatalf("next commit: incremental %+v, want one added entry on the stored listing", r.Incremental)
	}
}

// renumbered is a bottle whose listing and stream both hold a reserved
// name; ino moves every entry's inode, as a resume does.
type renumbered struct{ ino uint64 }

func (r *renumbered) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	return files{"f": "full", ".wh.x": "agent"}.Stream(ctx, req)
}

func (r *renumbered) List(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	b := []byte(fileindex.Header(time.Now().Add(-time.Hour)))
	for i, p := range []string{"f", ".wh.x"} {
		b = fileindex.AppendRecord(b, &fileindex.Entry{Type: 'f', Mode: 0o644, Mtime: fileindex.Time{Sec: 100}, Ctime: fileindex.Time{Sec: 100}, Ino: r.ino + uint64(i), Nlink: 1, Path: p})
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (r *renumbered) StreamPaths(ctx context.Context, req snapshot.StreamRequest, paths []string) (io.ReadCloser, error) {
	return (&lister{}).StreamPaths(ctx, req, paths)
}

// A commit that gives up its increment (every inode new, as after a
// resume) streams the whole bottle through the filter, which counts the
// reserved names: each is counted once, not again from the listing.
func TestRenumberedCommitCountsReservedOnce(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := &renumbered{ino: 10}
	req := snapshot.Request{Slug: "renum", Backend: "dir", SourceName: "test", Source: src, Now: time.Now()}
	for i, ino := range []uint64{10, 1000} {
		src.ino = ino
		req.Source = src
		r, err := snapshot.Build(ctx, s, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := snapshot.Publish(ctx, s, r, -1); err != nil {
			t.Fatal(err)
		}
		if i == 1 && (r.Incremental == nil || r.Incremental.Parent != "" || !strings.Contains(r.Incremental.Full, "new inodes")) {
			t.Fatalf("second commit: incremental %+v, want a full one for the new inodes", r.Incremental)
		}
		if r.Stats.Reserved != 1 || len(r.Stats.ReservedPaths) != 1 {
			t.Errorf("commit %d: reserved %d %q, want the one .wh.x", i+1, r.Stats.Reserved, r.Stats.ReservedPaths)
		}
	}
}
