package backendtest

import (
	"context"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// ResumeKeepsAnotherToolsImage: another tool puts a snapshot under bb's
// committed name (the runtime's own load of an older snapshot) without
// rewriting committed-image, after bb stored later ones without loading
// them; the resume boots what the other tool put there and does not load
// bb's latest over it. For runtimes that tell which image a name holds
// (bottle.ImageIdentifier).
func ResumeKeepsAnotherToolsImage(t *testing.T, h Harness) {
	e := NewEnv(t, h)
	ctx := context.Background()
	slug := NewSlug("imageid")
	StartBottle(t, h, e, slug, testimage.Options{})
	commit := func(note string, noLoad bool) *bottle.CommitResult {
		t.Helper()
		if _, err := h.Exec(t, slug, nil, "sh", "-c", "echo "+note+" > /root/note"); err != nil {
			t.Fatal(err)
		}
		res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{NoLoad: noLoad})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	commit("A", false)
	b := commit("B", true)
	commit("C", true)
	// The other tool: B under bb's name, committed-image untouched.
	rt := e.Manager.Runtimes[h.Backend()]
	if _, err := rt.Load(ctx, bottle.Snapshot{Slug: slug, Store: e.Manager.Store, Manifest: b.Snapshot.Manifest}); err != nil {
		t.Fatal(err)
	}
	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	out, err := h.Exec(t, slug, nil, "cat", "/root/note")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.TrimSpace(string(out)); n != "B" {
		t.Fatalf("resume booted note %q, want B (what another tool put under bb's name)", n)
	}
}
