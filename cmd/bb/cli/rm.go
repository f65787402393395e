package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newRm(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "rm SLUG|TAG",
		Short: "Delete a slug's snapshots, or one earlier snapshot, from the store",
		Long: `Delete snapshots from bb's store.

bb rm SLUG removes every snapshot of SLUG and its metadata; bb rm
SLUG-<time> removes one earlier snapshot (see bb inspect SLUG for them).
The bottle's state directory and runtime images are left alone. Blobs no
other snapshot uses are removed once they are an hour old (bb gc).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			removed, err := m.Remove(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, r := range removed {
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", r)
			}
			return nil
		},
	}
}
