package adversarial

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
)

// N commits of one slug at once (--keep -1): every one that reports
// success leaves its snapshot tagged, history tags never collide, and
// the store stays valid. (Issue 7, item 3: 2–6 of 50 were lost before.)
func TestConcurrentCommitsOfOneSlug(t *testing.T) {
	home := t.TempDir()
	const n = 8
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
		tree(t, dirs[i], uint64(i), 64<<10)
	}
	digests := make([]string, n)
	var wg sync.WaitGroup
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				out, err := run(t, home, "commit", "--from-dir", dirs[i], "--slug", "one", "--keep", "-1", "--json")
				if err != nil {
					t.Errorf("commit %d: %v\n%s", i, err, out)
					return
				}
				var res commitJSON
				decode(t, out, &res)
				digests[i] = res.Digest
			}(i)
		}
		wg.Wait()
		tagged := map[string]bool{}
		for _, d := range tags(t, filepath.Join(home, "oci")) {
			tagged[d] = true
		}
		for i, d := range digests {
			if d != "" && !tagged[d] {
				t.Errorf("round %d: commit %d reported %s, which no tag reaches", round, i, d)
			}
		}
	}
	s, _ := oci.Open(filepath.Join(home, "oci"))
	entries, err := snapshot.List(context.Background(), s, "one")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2*n {
		t.Errorf("%d history entries after %d successful commits", len(entries), 2*n)
	}
	checkStore(t, filepath.Join(home, "oci"))
	mustRun(t, home, "resume", "one", "--dir", filepath.Join(t.TempDir(), "out"))
}

// Commits of different slugs at once, while bb gc and the history pruning
// of other commits run: every slug ends with its snapshot and the store
// is valid.
func TestConcurrentCommitsOfSlugsRacingGC(t *testing.T) {
	home := t.TempDir()
	const n = 6
	var wg sync.WaitGroup
	stop := make(chan struct{})
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if out, err := run(t, home, "gc"); err != nil {
				t.Errorf("gc: %v\n%s", err, out)
				return
			}
		}
	}()
	results := make([]string, n)
	for i := 0; i < n; i++ {
		dir := t.TempDir()
		tree(t, dir, uint64(100+i), 64<<10)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			slug := fmt.Sprintf("slug%d", i)
			for k := 0; k < 3; k++ {
				out, err := run(t, home, "commit", "--from-dir", dir, "--slug", slug, "--keep", "0", "--json")
				if err != nil {
					t.Errorf("commit %s: %v\n%s", slug, err, out)
					return
				}
				var res commitJSON
				decode(t, out, &res)
				results[i] = res.Digest
			}
		}(i)
	}
	wg.Wait()
	close(stop)
	<-gcDone
	got := tags(t, filepath.Join(home, "oci"))
	for i, d := range results {
		slug := fmt.Sprintf("slug%d", i)
		if got[slug] != d {
			t.Errorf("%s is tagged %s, its last commit made %s", slug, got[slug], d)
		}
	}
	checkStore(t, filepath.Join(home, "oci"))
}
