package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/bot-bottle/bb/internal/progress"
	"github.com/spf13/cobra"
)

func newList(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List bottles and their snapshots",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			rows, err := m.List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SLUG\tBACKEND\tRUNNING\tSNAPSHOT\tDIGEST\tSIZE\tCREATED\tHISTORY")
			for _, r := range rows {
				dig, size, created := "-", "-", "-"
				if r.Digest != "" {
					dig = r.Digest[:19]
					size = progress.Bytes(r.Size)
					created = r.Created.Local().Format(time.DateTime)
				}
				snap := r.Committed
				if snap == "" {
					snap = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\t%s\t%d\n", printable(r.Slug), printable(r.Backend), r.Running, printable(snap), printable(dig), size, created, r.History)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
