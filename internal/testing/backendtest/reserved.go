package backendtest

import (
	"bytes"
	"context"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci/layer"
)

// ReservedNames commits a bottle whose first snapshot holds /srv/foo and
// /srv/base/, then makes files named like whiteouts (/srv/.wh.foo,
// /srv/base/.wh..wh..opq, a directory /srv/.wh.dir) and deletes
// /srv/gone: the second commit leaves them out and names them, and the
// bottle resumed from it has everything else, foo and base/ included,
// without gone.
func ReservedNames(t *testing.T, h Harness) {
	ctx := context.Background()
	e := NewEnv(t, h)
	slug := NewSlug("reserved")
	StartBottle(t, h, e, slug, testimage.Options{Findutils: true})
	sh := func(script string) {
		t.Helper()
		if _, err := h.Exec(t, slug, bytes.NewReader(nil), "sh", "-c", "set -e\n"+script); err != nil {
			t.Fatal(err)
		}
	}
	sh("mkdir -p /srv/base/sub && echo foo > /srv/foo && echo keep > /srv/base/keep && echo deep > /srv/base/sub/deep && echo gone > /srv/gone")
	time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
	if _, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
		t.Fatalf("commit: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	sh("echo agent > /srv/.wh.foo && echo agent > /srv/base/.wh..wh..opq && mkdir /srv/.wh.dir && echo agent > /srv/.wh.dir/inner && rm /srv/gone")
	res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	want := []string{"srv/.wh.dir", "srv/.wh.dir/inner", "srv/.wh.foo", "srv/base/.wh..wh..opq"}
	got := append([]string{}, res.Stats.ReservedPaths...)
	sort.Strings(got)
	if res.Stats.Reserved != int64(len(want)) || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reserved %d %q, want %q", res.Stats.Reserved, got, want)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "srv/.wh.foo") {
		t.Errorf("no warning names the left-out files: %q", res.Warnings)
	}
	if res.Incremental == nil || res.Incremental.Parent == "" || res.Incremental.Deleted != 1 {
		t.Errorf("second commit: %+v, want an incremental one with one deletion", res.Incremental)
	}
	before := Walk(t, h, slug)
	for p := range before {
		if layer.Reserved(p) {
			delete(before, p)
		}
	}
	after := resumeFromStore(ctx, t, h, e, slug, before, "the bottle without the reserved names")
	for _, p := range []string{"srv/foo", "srv/base/keep", "srv/base/sub/deep"} {
		if _, ok := after[p]; !ok {
			t.Errorf("%s is missing after the resume", p)
		}
	}
}
