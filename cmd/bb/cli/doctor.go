package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/oci"
	"github.com/spf13/cobra"
)

func newDoctor(g *globals) *cobra.Command {
	var fix, asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check the store before trusting it: tags, blobs, temporary files, permissions",
		Long: `Check bb's store and home as a careful user would before trusting them:
every tag resolves to a complete image (manifest, config and layers present
with their sizes), every blob hashes to its digest, no temporary files of
killed writes are left, and bb's directories and files are private (0700,
0600). It says what it would fix; --fix fixes what is safe: stale
temporary files go, modes are tightened, a damaged blob goes only if no tag
reaches it (otherwise bb names the snapshots to import or pull again).
The exit status is 1 while a problem remains.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			root := g.storeDir()
			if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no store at %s (nothing to check)", root)
			}
			s, err := oci.Open(root, oci.WithoutRepair())
			if err != nil {
				return err
			}
			rep, err := s.Check(cmd.Context(), oci.CheckOptions{Fix: fix})
			if err != nil {
				return err
			}
			home, err := g.homeDir().Check(fix)
			if err != nil {
				return err
			}
			rep.Findings = append(rep.Findings, home...)
			ok := rep.Tally()
			if asJSON {
				if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
					return err
				}
			} else {
				out := cmd.OutOrStdout()
				fmt.Fprintf(out, "store %s: %d tags, %d blobs (%s), %d unreferenced (bb gc removes them after %s)\n",
					rep.Root, rep.Tags, rep.Blobs, progress.Bytes(rep.Bytes), rep.Unreferenced, oci.GCGrace)
				for _, f := range rep.Findings {
					where := f.Path
					if f.Ref != "" && (f.Kind == oci.FindingTag || where == "") {
						where = f.Ref
					}
					state := "would fix: " + f.Fix
					switch {
					case f.Fixed:
						state = "fixed: " + f.Fix
					case f.Fix == "":
						state = "not fixed automatically"
					}
					fmt.Fprintf(out, "%s %s: %s [%s]\n", f.Kind, where, f.Problem, state)
				}
				if len(rep.Findings) == 0 {
					fmt.Fprintln(out, "no problems found")
				} else if !fix {
					fmt.Fprintln(out, "run bb doctor --fix to fix what is safe")
				}
			}
			if !ok {
				return errProblems
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "fix what is safe (stale temporary files, modes, damaged blobs no tag needs)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// errProblems is doctor's failure once the report is printed.
var errProblems = errors.New("problems remain (see the report above)")
