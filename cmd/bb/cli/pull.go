package cli

import (
	"fmt"
	"path"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/remote"
	"github.com/bot-bottle/bb/state"
	"github.com/spf13/cobra"
)

func init() { extraCommands = append(extraCommands, newPull) }

// pullOutput is bb pull --json.
type pullOutput struct {
	*remote.PullResult
	Slug      string `json:"slug"`
	Committed string `json:"committed,omitempty"`
}

func newPull(g *globals) *cobra.Command {
	var (
		rf   remoteFlags
		as   string
		opts bottle.AdoptOptions
	)
	cmd := &cobra.Command{
		Use:   "pull REGISTRY/REPO[:TAG|@DIGEST]",
		Short: "Fetch a snapshot from an OCI registry and make it a bottle's current one",
		Long: `Fetch a snapshot pushed with bb push (or any single-platform image) into
bb's store, verifying every blob's digest and size as it streams, restore
the bottle's metadata.json from the referrer artifact attached to it, and
make it the current snapshot of a slug, so that bb resume works here.

The slug is --as, else the one recorded in the snapshot, else the
repository's last path element. Credentials and transport flags are as for
bb push.`,
		Example: `  bb pull registry.example.com/bottles/demo:v1
  bb pull 127.0.0.1:5000/demo --as demo2 --load`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			if as != "" {
				if err := state.ValidSlug(as); err != nil {
					return fmt.Errorf("--as: %w", err)
				}
			}
			meter := progress.Start(cmd.ErrOrStderr(), "pull "+args[0])
			res, err := remote.Pull(ctx, m.Store, args[0], rf.options(g, cmd, meter))
			meter.Stop()
			if err != nil {
				return err
			}
			slug := as
			if slug == "" {
				slug = res.Slug
			}
			if slug == "" || state.ValidSlug(slug) != nil {
				slug = path.Base(res.Repository)
			}
			if err := state.ValidSlug(slug); err != nil {
				return fmt.Errorf("pulled %s, but found no usable slug for it (%v): pass --as NAME", res.Manifest.Digest, err)
			}
			opts.Metadata = res.Metadata
			committed, err := m.Adopt(ctx, slug, res.Manifest, opts)
			if err != nil {
				return err
			}
			if rf.asJSON {
				return printJSON(cmd.OutOrStdout(), pullOutput{PullResult: res, Slug: slug, Committed: committed})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pulled %s as %s\n  digest %s\n  fetched %s in %s (%s already in the store)\n",
				res.Reference, slug, res.Manifest.Digest, progress.Bytes(res.Fetched), res.Duration.Round(1e7), progress.Bytes(res.Present))
			if res.Metadata != nil {
				fmt.Fprintf(out, "  bottle metadata restored to %s (host paths left out; as received: %s)\n", m.Home.StateDir(slug)+"/"+state.MetadataFile, state.ImportedMetadataFile)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s carries no bottle metadata; only the image was restored\n", res.Reference)
			}
			if committed != "" {
				fmt.Fprintf(out, "  %s -> %s\n", m.Home.StateDir(slug)+"/"+state.CommittedImageFile, committed)
			}
			fmt.Fprintf(out, "to resume it: bb resume %s\n", slug)
			return nil
		},
	}
	rf.bind(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&as, "as", "", "slug to restore the snapshot under (default: the slug it was pushed from)")
	f.BoolVar(&opts.Load, "load", false, "load the snapshot into the bottle's runtime now")
	f.BoolVar(&opts.Force, "force", false, "replace the slug's current snapshot on this host")
	f.StringVar(&opts.Backend, "backend", "", "backend to restore the bottle for (default: from its metadata)")
	return cmd
}
