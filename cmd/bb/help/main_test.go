package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/spf13/cobra/doc"
)

// TestDocsCurrent fails when docs/cli does not match the command tree:
// run `make docs` after changing a command.
func TestDocsCurrent(t *testing.T) {
	dir := t.TempDir()
	root := cli.New()
	root.DisableAutoGenTag = true
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.Glob(filepath.Join(dir, "*.md"))
	checked := filepath.Join("..", "..", "..", "docs", "cli")
	have, _ := filepath.Glob(filepath.Join(checked, "*.md"))
	if len(want) != len(have) {
		t.Fatalf("docs/cli has %d files, the command tree %d: run make docs", len(have), len(want))
	}
	for _, w := range want {
		a, _ := os.ReadFile(w)
		b, err := os.ReadFile(filepath.Join(checked, filepath.Base(w)))
		if err != nil || string(a) != string(b) {
			t.Errorf("docs/cli/%s is out of date: run make docs", filepath.Base(w))
		}
	}
}
