package cli

import (
	"fmt"
	"io"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/spf13/cobra"
)

func newImport(g *globals) *cobra.Command {
	var (
		opts   bottle.ImportOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "import FILE|-",
		Short: "Add snapshots from an archive to this host, ready for bb resume",
		Long: `Read an archive written by bb export (or a single image from docker save
or skopeo's oci-archive) into bb's store, verifying every blob's digest and
size as it arrives, and make each snapshot the current one of its bottle:
metadata.json, committed-image and the preserve marker are written under
~/.bot-bottle/state/SLUG, so bb resume SLUG works here.

The archive is read once, so it may come from a pipe (-). A damaged or
unsafe archive is refused and leaves the store and the state as they were.
Images without a bottle slug (from other tools) need --as.`,
		Example: `  bb import demo.tar
  bb import demo.tar --as demo-copy
  ssh host bb export demo -o - | bb import - --load`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			meter := progress.Start(cmd.ErrOrStderr(), "import")
			opts.Progress = meter.Set
			var res *bottle.ImportResult
			if args[0] == "-" {
				res, err = m.Import(cmd.Context(), cmd.InOrStdin(), opts)
			} else {
				res, err = m.ImportFile(cmd.Context(), args[0], opts)
			}
			meter.Stop()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			for _, img := range res.Images {
				md := "no bottle metadata"
				if img.Metadata {
					md = "bottle metadata restored, host paths left out"
				}
				fmt.Fprintf(out, "imported %s: %s (%s)\n", img.Slug, img.Digest, md)
				if img.Committed != "" {
					fmt.Fprintf(out, "  %s/committed-image -> %s\n", m.Home.StateDir(img.Slug), img.Committed)
				}
				fmt.Fprintf(out, "to resume it: bb resume %s\n", img.Slug)
				warnName(cmd.ErrOrStderr(), m, img.Slug)
			}
			fmt.Fprintf(out, "read %s (%s archive), %d new blobs, in %s\n", progress.Bytes(res.Bytes), res.Format, res.NewBlobs, res.Duration.Round(1e6))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.As, "as", "", "import the archive's one snapshot under this slug")
	f.StringVar(&opts.Backend, "backend", "", "backend to record for the bottle (default: from its metadata, else docker)")
	f.BoolVar(&opts.Load, "load", false, "load the snapshot into its runtime now (otherwise bb resume does)")
	f.BoolVar(&opts.Force, "force", false, "replace a different snapshot or existing state of the same slug")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// warnName tells, right after an import, when the slug cannot name a
// bottle of its backend (smolvm and Apple container have name rules of
// their own): resume would refuse it.
func warnName(w io.Writer, m *bottle.Manager, slug string) {
	backend, err := m.Backend(slug, "")
	if err != nil {
		return
	}
	rt, err := m.Runtime(backend)
	if err != nil {
		return
	}
	if nc, ok := rt.(bottle.NameChecker); ok {
		if err := nc.CheckName(slug); err != nil {
			fmt.Fprintf(w, "warning: %v\n", err)
		}
	}
}
