package bottle_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A converted copy of a snapshot (push or export --compression) goes
// with the snapshot: bb rm of its history tag or of the slug drops it.
func TestRemoveDropsConvertedCopies(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, _ := oci.Open(filepath.Join(home, "oci"))
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	var results []*bottle.CommitResult
	for i := 0; i < 2; i++ {
		data := tarOf(t, map[string]string{"a": strings.Repeat("v", i+1)})
		rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
		r, err := m.Commit(ctx, "rmconv", bottle.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := snapshot.Convert(ctx, s, r.Snapshot.Manifest, layer.Zstd, layer.Options{}); err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	copies := func() map[string]bool {
		idx, _ := s.Index(ctx)
		out := map[string]bool{}
		for _, e := range idx.Manifests {
			if e.ArtifactType == snapshot.ConvertedArtifactType {
				out[e.Annotations["dev.bot-bottle.subject"]] = true
			}
		}
		return out
	}
	if c := copies(); len(c) != 2 {
		t.Fatalf("converted copies %v", c)
	}
	if _, err := m.Remove(ctx, results[0].Snapshot.TimeTag); err != nil {
		t.Fatal(err)
	}
	if c := copies(); len(c) != 1 || !c[results[1].Snapshot.Manifest.Digest.String()] {
		t.Fatalf("after removing the old snapshot: %v", c)
	}
	if _, err := m.Remove(ctx, "rmconv"); err != nil {
		t.Fatal(err)
	}
	if c := copies(); len(c) != 0 {
		t.Fatalf("after removing the slug: %v", c)
	}
}

// A snapshot named under another slug (bb import --as, bb pull --as: the
// manifest keeps the slug it was committed as) takes its converted copy
// with it when that slug is removed: no artifact outlives the last name
// of its subject (gc would keep its blobs for ever).
func TestRemoveDropsConvertedCopyOfRenamedSnapshot(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, _ := oci.Open(filepath.Join(home, "oci"))
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	data := tarOf(t, map[string]string{"a": "v"})
	rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
	r, err := m.Commit(ctx, "orig", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nameAs(t, s, "orig", r.Snapshot.Manifest.Digest.String(), "other")
	if _, err := m.Remove(ctx, "orig"); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Convert(ctx, s, r.Snapshot.Manifest, layer.Zstd, layer.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Remove(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	idx, _ := s.Index(ctx)
	for _, e := range idx.Manifests {
		t.Errorf("left in index.json after every snapshot was removed: %s %s %v", e.ArtifactType, e.Digest, e.Annotations)
	}
}

// nameAs names the snapshot digest of slug also under the slug other, as
// bb import --as does (the manifest and its annotations stay).
func nameAs(t *testing.T, s *oci.Store, slug, digest, other string) {
	t.Helper()
	err := s.UpdateIndex(context.Background(), func(idx *v1.IndexManifest) error {
		for _, e := range idx.Manifests {
			name := e.Annotations[oci.RefNameAnnotation]
			if e.Digest.String() != digest || e.Annotations[oci.SlugAnnotation] != slug || !snapshot.IsSnapshotTag(slug, name) {
				continue
			}
			for _, n := range []string{other + strings.TrimPrefix(name, slug), other} {
				c := e
				c.Annotations = map[string]string{}
				for k, v := range e.Annotations {
					c.Annotations[k] = v
				}
				c.Annotations[oci.SlugAnnotation] = other
				c.Annotations[oci.RefNameAnnotation] = n
				idx.Manifests = append(idx.Manifests, c)
			}
			break
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Removing one name of a snapshot that another slug names too (bb rm of
// a history tag) keeps the artifacts attached to it: they are the other
// slug's too.
func TestRemoveKeepsArtifactsOfSnapshotNamedElsewhere(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	s, _ := oci.Open(filepath.Join(home, "oci"))
	rt := &fakeRuntime{}
	m := &bottle.Manager{Home: state.Home{Dir: home}, Store: s, Runtimes: map[string]bottle.Runtime{"docker": rt}}
	var results []*bottle.CommitResult
	for i := 0; i < 2; i++ {
		data := tarOf(t, map[string]string{"a": strings.Repeat("v", i+1)})
		rt.stream = func() io.ReadCloser { return io.NopCloser(bytes.NewReader(data)) }
		r, err := m.Commit(ctx, "hist", bottle.CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	old := results[0].Snapshot.Manifest.Digest.String()
	if _, err := snapshot.PutMetadata(ctx, s, "hist", results[0].Snapshot.Manifest, []byte(`{"bottle":"hist"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := snapshot.Convert(ctx, s, results[0].Snapshot.Manifest, layer.Zstd, layer.Options{}); err != nil {
		t.Fatal(err)
	}
	artifacts := func() map[string]int {
		idx, _ := s.Index(ctx)
		out := map[string]int{}
		for _, e := range idx.Manifests {
			if e.Annotations[oci.SubjectAnnotation] == old {
				out[e.ArtifactType]++
			}
		}
		return out
	}
	before := artifacts()
	if before[snapshot.MetadataArtifactType] == 0 || before[snapshot.ConvertedArtifactType] == 0 {
		t.Fatalf("artifacts of the snapshot: %v", before)
	}
	nameAs(t, s, "hist", old, "other")
	if _, err := m.Remove(ctx, results[0].Snapshot.TimeTag); err != nil {
		t.Fatal(err)
	}
	if after := artifacts(); after[snapshot.MetadataArtifactType] != before[snapshot.MetadataArtifactType] || after[snapshot.ConvertedArtifactType] != 1 {
		t.Errorf("removing %s dropped artifacts of the snapshot other still names: %v, were %v", results[0].Snapshot.TimeTag, after, before)
	}
	if b, err := snapshot.GetMetadata(ctx, s, results[0].Snapshot.Manifest.Digest); err != nil || string(b) != `{"bottle":"hist"}` {
		t.Errorf("metadata of the snapshot other names: %q, %v", b, err)
	}
	for _, slug := range []string{"hist", "other"} {
		if _, err := m.Remove(ctx, slug); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := s.Index(ctx)
	for _, e := range idx.Manifests {
		t.Errorf("left in index.json after every snapshot was removed: %s %s %v", e.ArtifactType, e.Digest, e.Annotations)
	}
}
