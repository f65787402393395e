package registry_test

import (
	"errors"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/snapshot"
)

// Deleting a bb snapshot by digest takes its file index along, as it
// takes its metadata: nothing is left in index.json for gc to keep.
func TestDeleteTakesFileIndexAlong(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	blob, err := f.store.PutBytes(ctx, snapshot.IndexMediaType, []byte("not read"))
	if err != nil {
		t.Fatal(err)
	}
	if err := snapshot.PutIndex(ctx, f.store, "other", f.other.Manifest, blob); err != nil {
		t.Fatal(err)
	}
	srv := start(t, f.store, registry.Options{AllowPush: true, AllowDelete: true})
	do(t, "DELETE", srv.URL()+"/v2/other/manifests/"+f.other.Manifest.Digest.String(), nil).expect(t, 202, "")
	if _, err := snapshot.IndexOf(ctx, f.store, f.other.Manifest.Digest); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("file index of a deleted snapshot: %v", err)
	}
}
