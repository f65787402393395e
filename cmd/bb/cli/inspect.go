package cli

import (
	"fmt"
	"sort"
	"text/tabwriter"

	"github.com/bot-bottle/bb/internal/progress"
	"github.com/spf13/cobra"
)

func newInspect(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect SLUG|TAG|DIGEST",
		Short: "Show a snapshot's manifest, config and layers",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			ins, err := m.Inspect(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), ins)
			}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "ref\t%s\n", ins.Ref)
			fmt.Fprintf(tw, "manifest\t%s\n", ins.Digest)
			fmt.Fprintf(tw, "size\t%s\n", progress.Bytes(ins.Size))
			keys := make([]string, 0, len(ins.Manifest.Annotations))
			for k := range ins.Manifest.Annotations {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "annotation\t%s=%s\n", printable(k), printable(ins.Manifest.Annotations[k]))
			}
			c := ins.Config.Config
			fmt.Fprintf(tw, "os/arch\t%s/%s\n", printable(ins.Config.OS), printable(ins.Config.Architecture))
			fmt.Fprintf(tw, "user\t%s\n", printable(c.User))
			fmt.Fprintf(tw, "workdir\t%s\n", printable(c.WorkingDir))
			fmt.Fprintf(tw, "entrypoint\t%q\n", c.Entrypoint)
			fmt.Fprintf(tw, "cmd\t%q\n", c.Cmd)
			for _, e := range c.Env {
				fmt.Fprintf(tw, "env\t%s\n", printable(e))
			}
			// An artifact or a damaged image may list fewer diff_ids than
			// layers: show what there is.
			for i, l := range ins.Manifest.Layers {
				diff := "none in the config"
				if i < len(ins.Config.RootFS.DiffIDs) {
					diff = ins.Config.RootFS.DiffIDs[i].String()
				}
				fmt.Fprintf(tw, "layer %d\t%s %s %s (diffID %s)\n", i, l.Digest, progress.Bytes(l.Size), printable(string(l.MediaType)), diff)
			}
			for i := len(ins.Manifest.Layers); i < len(ins.Config.RootFS.DiffIDs); i++ {
				fmt.Fprintf(tw, "diffID %d\t%s (no layer in the manifest)\n", i, ins.Config.RootFS.DiffIDs[i])
			}
			for _, h := range ins.History {
				fmt.Fprintf(tw, "snapshot\t%s\n", printable(h))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
