package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/snapshot"
)

func newDiff(g *globals) *cobra.Command {
	var (
		req    bottle.DiffRequest
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "diff SLUG [FROM [TO]]",
		Short: "Paths added, changed and deleted between two snapshots, or since the last one",
		Long: `List the paths added (A), changed (M) and deleted (D) between two snapshots
of SLUG, with their sizes: by default between the current snapshot and the
one before it. FROM and TO are snapshot tags (see bb inspect SLUG) or
manifest digests. With --live, FROM (default: the current snapshot) is
compared with the running bottle: what the agent changed since the last
commit.

bb diff reads the file index each commit stores with its snapshot, so it
compares snapshots committed on this host (not imported or pulled ones), on
the backends that list their bottles (dir, macos-container, smolmachines).
A path counts as changed when its type, mode, owner, size, mtime, link
target, inode or ctime differ, so a file rewritten with the same size and
mtime shows up; a file written within a second before a commit may show up
once more at the next diff. Between snapshots taken before and after a
resume (every inode is new) only type, mode, owner, size, mtime and link
target are compared.`,
		Args: cobra.RangeArgs(1, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			if len(args) > 1 {
				req.From = args[1]
			}
			if len(args) > 2 {
				req.To = args[2]
			}
			res, err := m.Diff(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			printDiff(cmd.OutOrStdout(), res)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&req.Live, "live", false, "compare FROM (default: the current snapshot) with the running bottle")
	f.StringVar(&req.Backend, "backend", "", "bottle backend (default: from metadata.json)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func printDiff(w io.Writer, res *bottle.DiffResult) {
	fmt.Fprintf(w, "%s: %s -> %s\n", res.Slug, res.From, res.To)
	line := func(k string, e bottle.DiffEntry) {
		size := ""
		if e.Type == "f" {
			size = progress.Bytes(e.Size)
		}
		name := e.Path
		switch e.Type {
		case "d":
			name += "/"
		case "l":
			name += "@"
		}
		note := ""
		if e.Replaced {
			note = "  (replaced)"
		}
		fmt.Fprintf(w, "%s %10s  %s%s\n", k, size, name, note)
	}
	for _, e := range res.Added {
		line("A", e)
	}
	for _, e := range res.Changed {
		line("M", e)
	}
	for _, e := range res.Deleted {
		line("D", e)
	}
	fmt.Fprintf(w, "%d added, %d changed, %d deleted; %s of added and changed files\n",
		len(res.Added), len(res.Changed), len(res.Deleted), progress.Bytes(res.Bytes))
	if res.Reserved > 0 {
		fmt.Fprintf(w, "not in any snapshot: %d entries named like whiteouts (.wh.*): %s\n",
			res.Reserved, PrintableText(snapshot.ReservedList(int64(res.Reserved), res.ReservedPaths)))
	}
}
