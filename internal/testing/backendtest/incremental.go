package backendtest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// laterChanges edit, delete, replace a directory, turn a directory into
// a file and back, rewrite a hard-linked file in place, change an owner.
const laterChanges = `set -e
w=/home/node/work
echo edited > $w/a/b/c/deep.txt
rm $w/link
ln -s big.bin $w/link
rm -r $w/a/b
mkdir -p $w/a/b/new
echo new > $w/a/b/new/file
rm -r $w/empty
echo file > $w/empty
mkdir -p /opt/tool/bin
echo '#!/bin/sh' > /opt/tool/bin/run
chmod 750 /opt/tool/bin/run
chown 1000:1000 /etc/passwd
`

const lastChanges = `set -e
w=/home/node/work
echo rewritten | dd of=$w/big.bin conv=notrunc 2>&1
rm $w/empty
mkdir $w/empty
echo again > $w/empty/file
rm -r /opt/tool
`

// IncrementalChain commits a bottle three times (the second and third
// add a layer each; on Docker each is a new diff against the base
// image), then removes it and the runtime's copy, resumes it from the
// last snapshot and compares the trees.
func IncrementalChain(t *testing.T, h Harness) {
	ctx := context.Background()
	e := NewEnv(t, h)
	slug := NewSlug("incr")
	StartBottle(t, h, e, slug, testimage.Options{Findutils: true})
	Change(t, h, slug, 1<<20)
	commit := func(depth int) {
		t.Helper()
		time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
		res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
		// Docker's snapshots are the base image's layers plus one layer
		// of the container's changes against it, not a chain; the
		// resumed tree is checked all the same.
		if h.Backend() != bottle.Docker && (res.Incremental == nil || res.Incremental.Depth != depth) {
			t.Fatalf("commit: incremental %+v, want depth %d (warnings %v)", res.Incremental, depth, res.Warnings)
		}
	}
	commit(1)
	if _, err := h.Exec(t, slug, bytes.NewReader(nil), "sh", "-c", laterChanges); err != nil {
		t.Fatal(err)
	}
	commit(2)
	if _, err := h.Exec(t, slug, bytes.NewReader(nil), "sh", "-c", lastChanges); err != nil {
		t.Fatal(err)
	}
	commit(3)
	before := Walk(t, h, slug)
	resumeFromStore(ctx, t, h, e, slug, before, "the bottle, after a resume from the chain")
}
