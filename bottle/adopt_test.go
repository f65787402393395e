package bottle_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// TestAdoptSlugs: import and pull pick a slug the same way: --as, else
// the one recorded, else the fallback (pull's repository name); a taken
// slug is refused before anything changes.
func TestAdoptSlugs(t *testing.T) {
	ctx := context.Background()
	home := state.Home{Dir: t.TempDir()}
	s, err := oci.Open(filepath.Join(home.Dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: home, Store: s}
	d := v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}}
	one := func(a bottle.Arrival) []bottle.Arrival { a.Manifest = d; return []bottle.Arrival{a} }
	for _, tc := range []struct {
		name     string
		arrivals []bottle.Arrival
		opts     bottle.AdoptOptions
		want     string // slug, or "error: " and a part of the message
	}{
		{"recorded", one(bottle.Arrival{Slug: "rec", Fallback: "repo"}), bottle.AdoptOptions{}, "rec"},
		{"as", one(bottle.Arrival{Slug: "rec"}), bottle.AdoptOptions{As: "mine"}, "mine"},
		{"fallback", one(bottle.Arrival{Slug: "Not Valid", Fallback: "repo"}), bottle.AdoptOptions{Verb: "pull"}, "repo"},
		{"bad fallback", one(bottle.Arrival{Fallback: "Bad"}), bottle.AdoptOptions{Verb: "pull"}, "error: no usable slug"},
		{"no slug", one(bottle.Arrival{Name: "x:1"}), bottle.AdoptOptions{}, "error: not a bottle snapshot"},
		{"bad as", one(bottle.Arrival{Slug: "rec"}), bottle.AdoptOptions{As: "A/B"}, "error: --as"},
		{"as of two", []bottle.Arrival{{Manifest: d, Slug: "a"}, {Manifest: d, Slug: "b"}}, bottle.AdoptOptions{As: "x"}, "error: 2 images"},
		{"two of one slug", []bottle.Arrival{{Manifest: d, Slug: "a"}, {Manifest: d, Slug: "a"}}, bottle.AdoptOptions{}, "error: two of the snapshots"},
	} {
		slugs, err := m.AdoptSlugs(ctx, tc.arrivals, tc.opts)
		if want, ok := strings.CutPrefix(tc.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, %v; want an error with %q", tc.name, slugs, err, want)
			}
			continue
		}
		if err != nil || len(slugs) != 1 || slugs[0] != tc.want {
			t.Errorf("%s: got %v, %v; want %s", tc.name, slugs, err, tc.want)
		}
	}
	if err := home.WriteMetadata("taken", state.Metadata{Identity: "taken"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AdoptSlugs(ctx, one(bottle.Arrival{Slug: "taken"}), bottle.AdoptOptions{Verb: "pull"}); err == nil || !strings.Contains(err.Error(), "pull under another slug") {
		t.Errorf("a taken slug: %v", err)
	}
	if slugs, err := m.AdoptSlugs(ctx, one(bottle.Arrival{Slug: "taken"}), bottle.AdoptOptions{Force: true}); err != nil || slugs[0] != "taken" {
		t.Errorf("a taken slug with force: %v %v", slugs, err)
	}
}
