// Command help writes bb's CLI reference as Markdown into a directory
// (docs/cli), one file per command. `make docs` runs it; a test checks
// that the checked-in reference is current.
package main

import (
	"fmt"
	"os"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/spf13/cobra/doc"
)

func main() {
	dir := "docs/cli"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root := cli.New()
	root.DisableAutoGenTag = true
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
