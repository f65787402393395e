package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestUpperChanges compares the change list read from a container's
// upper directory with the daemon's, after changes of every kind: the
// same deletions, and the same paths apart from directories the daemon
// leaves out because their metadata did not change.
func TestUpperChanges(t *testing.T) {
	c := needDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("reading a container's upper directory needs root")
	}
	t.Parallel()
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, func(dir string) error {
		for _, d := range []string{"opt/old/sub", "srv/keep", "srv/was-dir/sub", "srv/tree/a/b"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		for _, f := range []string{"opt/old/sub/f", "opt/old/g", "srv/keep/k", "srv/keep/l", "srv/was-dir/sub/f", "srv/was-dir/g", "srv/tree/a/b/f"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	ctr := startBottle(t, c, base, newSlug("upper"))
	sh(t, c, ctr, mutate+`
rm -rf /opt/old && mkdir -p /opt/old/new && echo n > /opt/old/new/n
rm -rf /srv/was-dir && ln -s /home/node /srv/was-dir
rm -rf /srv/tree
echo more >> /srv/keep/k
chmod 600 /srv/keep/l
ln /srv/keep/l /srv/keep/l2
mkdir -p /tmp/scratch && echo x > /tmp/scratch/x
`)
	up, upDel, err := docker.PlanOf(ctx, c, ctr, true)
	if err != nil {
		t.Fatalf("upper directory: %v", err)
	}
	dm, dmDel, err := docker.PlanOf(ctx, c, ctr, false)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon (naive diff) names each deleted entry of a replaced
	// directory; the upper directory marks the directory opaque.
	covered := func(p string, set []string) bool {
		for d := p; d != "."; d = filepath.Dir(d) {
			if contains(set, d) {
				return true
			}
		}
		return false
	}
	for _, d := range dmDel {
		if !covered(d, upDel) {
			t.Errorf("the daemon deleted %s, the upper directory does not (upper %v, daemon %v)", d, upDel, dmDel)
		}
	}
	for _, u := range upDel {
		if !contains(dmDel, u) && !strings.Contains(" "+strings.Join(dmDel, " "), " "+u+"/") {
			t.Errorf("the upper directory deletes %s, the daemon nothing there (upper %v, daemon %v)", u, upDel, dmDel)
		}
	}
	have := map[string]bool{}
	for _, p := range up {
		have[p] = true
	}
	dirs := tree(t, c, ctr)
	for _, p := range dm {
		if !have[p] && !covered(p, upDel) {
			t.Errorf("the upper directory misses %s", p)
		}
		delete(have, p)
	}
	for p := range have {
		if e, ok := dirs[p]; !ok || e.Type != "dir" {
			t.Errorf("the upper directory lists %s, which the daemon does not and is not a directory", p)
		}
	}
	for _, want := range []string{"srv/keep/l", "srv/keep/l2", "opt/old/new/n", "srv/was-dir"} {
		if !contains(up, want) {
			t.Errorf("upper change list lacks %s", want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
