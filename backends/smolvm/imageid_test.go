package smolvm_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestResumeKeepsAnotherToolsImage: another tool packs an artifact at
// bb's path without rewriting committed-image; the resume boots that
// artifact and does not pack bb's later snapshot over it (the artifact
// file is another one).
func TestResumeKeepsAnotherToolsImage(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	slug := backendtest.NewSlug("imageid")
	backendtest.StartBottle(t, h, e, slug, testimage.Options{})
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
	// The other tool: B packed at bb's path, committed-image untouched.
	rt := e.Manager.Runtimes[bottle.Smolmachines]
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
		t.Fatalf("resume booted note %q, want B (the artifact another tool packed at bb's path)", n)
	}
}
