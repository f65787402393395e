package cli

import (
	"fmt"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/spf13/cobra"
)

func newResume(g *globals) *cobra.Command {
	var (
		req    bottle.ResumeRequest
		settle time.Duration
	)
	cmd := &cobra.Command{
		Use:   "resume SLUG",
		Short: "Boot a bottle from its latest snapshot",
		Long: `Boot bot-bottle-SLUG from its latest snapshot.

That is the one recorded in committed-image, unless bb stored a later
snapshot of SLUG without loading it (bb commit --no-load, bb import or
bb pull without loading): then bb loads the store's latest snapshot
first, and records it. A commit that another tool recorded in
committed-image after bb's last load is booted as it is, never replaced.
If the runtime lost the image (pruned, or this is another host after an
import), bb loads it again from its store first. /tmp and /var/tmp are
recreated root:root 1777. With the dir backend, the snapshot is extracted
into --dir (default ~/.bot-bottle/state/SLUG/rootfs), mode 0700 at the
top, its own modes inside; device nodes only with --devices. bb then
watches the bottle for --settle: if its command exits at once, resume
fails with the exit code and the last lines of its output, and the
snapshot and committed-image stay as they were. With --print, bb only makes sure the runtime has
the snapshot (loading it as above) and prints its reference, for launchers that start bottles
themselves.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			req.Resume.Warn = func(msg string) { fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", PrintableText(msg)) }
			req.Resume.Settle = settle
			if settle <= 0 {
				req.Resume.Settle = -1
			}
			ref, err := m.Resume(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			if req.PrintOnly {
				fmt.Fprintln(cmd.OutOrStdout(), ref)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "resumed %s from %s\n", args[0], ref)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Backend, "backend", "", "bottle backend (default: from metadata.json, else docker)")
	f.BoolVar(&req.PrintOnly, "print", false, "only make sure the runtime has the snapshot and print its reference")
	f.BoolVar(&req.Resume.Replace, "replace", false, "replace a running bottle of the same name")
	f.DurationVar(&settle, "settle", bottle.DefaultSettle, "how long to watch the booted bottle: if its command exits within it, resume fails with its exit code and last output (0 skips the check)")
	f.StringVar(&req.Resume.Dir, "dir", "", "dir backend: directory to extract the snapshot into (default <home>/state/SLUG/rootfs); it becomes the bottle's directory, mode 0700")
	f.BoolVar(&req.Resume.Devices, "devices", false, "dir backend: create the snapshot's device nodes (skipped and listed otherwise)")
	return cmd
}
