package fileindex_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bot-bottle/bb/fileindex"
)

// A symlink the bottle replaces (by a file, or removes) while Walk lists
// it is an entry that changed while listed, as a file that vanishes is:
// it does not fail the listing (which would make this commit and the
// next full ones).
func TestWalkSymlinkReplacedWhileListed(t *testing.T) {
	dir := t.TempDir()
	l := filepath.Join(dir, "l")
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); i++ {
			tmp := filepath.Join(dir, ".tmp")
			if i%2 == 0 {
				_ = os.Symlink("target", tmp)
			} else {
				_ = os.WriteFile(tmp, []byte("x"), 0o644)
			}
			_ = os.Rename(tmp, l)
		}
	}()
	defer func() { stop.Store(true); <-done }()
	deadline := time.Now().Add(time.Second)
	for n := 0; time.Now().Before(deadline); n++ {
		if err := fileindex.Walk(context.Background(), dir, fileindex.WalkOptions{}, io.Discard); err != nil {
			t.Fatalf("walk %d: %v", n, err)
		}
	}
}
