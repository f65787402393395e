package dir_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/bottle"
)

func TestDiffCommand(t *testing.T) {
	root := filepath.Join(t.TempDir(), "bottle")
	home := t.TempDir()
	w := func(p, c string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("keep", "same")
	w("edit", "one")
	w("gone/file", "x")
	time.Sleep(1100 * time.Millisecond)
	run(t, "--home", home, "commit", "--from-dir", root, "--slug", "incr-diff")
	if out := run(t, "--home", home, "diff", "incr-diff", "--live"); !strings.Contains(out, "0 added, 0 changed, 0 deleted") {
		t.Fatalf("diff --live right after a commit:\n%s", out)
	}
	time.Sleep(1100 * time.Millisecond)
	w("edit", "two!")
	w("new/file", "12345")
	if err := os.RemoveAll(filepath.Join(root, "gone")); err != nil {
		t.Fatal(err)
	}
	live := strings.Join(strings.Fields(run(t, "--home", home, "diff", "incr-diff", "--live")), " ")
	for _, want := range []string{"A 5 B new/file", "M 4 B edit", "D gone/", "D 1 B gone/file"} {
		if !strings.Contains(live, want) {
			t.Errorf("diff --live lacks %q:\n%s", want, live)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	run(t, "--home", home, "commit", "--from-dir", root, "--slug", "incr-diff")
	var res bottle.DiffResult
	if err := json.Unmarshal([]byte(run(t, "--home", home, "diff", "incr-diff", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	paths := func(l []bottle.DiffEntry) (s []string) {
		for _, e := range l {
			s = append(s, e.Path)
		}
		return s
	}
	if got := strings.Join(paths(res.Added), ","); got != "new,new/file" {
		t.Errorf("added %s", got)
	}
	if got := strings.Join(paths(res.Deleted), ","); got != "gone,gone/file" {
		t.Errorf("deleted %s", got)
	}
	if got := strings.Join(paths(res.Changed), ","); !strings.Contains(got, "edit") || strings.Contains(got, "keep") {
		t.Errorf("changed %s", got)
	}
	if res.From == "" || res.To == "" || res.From == res.To {
		t.Errorf("from %q to %q", res.From, res.To)
	}
}
