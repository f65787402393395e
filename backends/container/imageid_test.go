package container_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestResumeKeepsAnotherToolsImage: another tool loads an image under
// bb's name without rewriting committed-image; the resume boots that
// image and does not load bb's later snapshot over it (container tells
// which manifest the name holds).
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
	// The other tool: B under bb's name, committed-image untouched.
	rt := e.Manager.Runtimes[bottle.MacosContainer]
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
		t.Fatalf("resume booted note %q, want B (the image another tool put under the name)", n)
	}
}
