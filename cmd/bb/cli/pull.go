package cli

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/remote"
	"github.com/bot-bottle/bb/state"
	"github.com/spf13/cobra"
)

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
		idle time.Duration
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
bb push.

Before any blob is downloaded, bb refuses what is not a container image
(an artifact, an unknown media type, an index without a linux image; of
an index, the linux image for this host's architecture is pulled) and a
slug that already has another snapshot or bottle here (unless --force).
Each layer's uncompressed content is checked against its config's diff_id
as it streams; a registry that sends nothing for --idle-timeout is given
up on. A refused or failed pull removes the blobs it added.`,
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
			// The slug is known once the manifest is read: refuse a taken
			// one before any blob is downloaded.
			opts.As, opts.Verb = as, "pull"
			var (
				arrivals []bottle.Arrival
				slugs    []string
			)
			plan := func(ctx context.Context, res *remote.PullResult) error {
				arrivals = []bottle.Arrival{{Manifest: res.Manifest, Slug: res.Slug, Fallback: path.Base(res.Repository), Name: res.Reference}}
				var err error
				slugs, err = m.AdoptSlugs(ctx, arrivals, opts)
				return err
			}
			ro := rf.options(g, cmd, nil)
			ro.IdleTimeout = idle
			ro.BeforeFetch = func(ctx context.Context, res *remote.PullResult) error {
				if err := plan(ctx, res); err != nil {
					return fmt.Errorf("%w; nothing was downloaded", err)
				}
				return nil
			}
			meter := progress.Start(cmd.ErrOrStderr(), "pull "+args[0])
			ro.Progress = meter.Add
			res, err := remote.Pull(ctx, m.Store, args[0], ro)
			meter.Stop()
			if err != nil {
				return err
			}
			if arrivals == nil { // BeforeFetch was not called
				if err := plan(ctx, res); err != nil {
					return err
				}
			}
			arrivals[0].Metadata, opts.Added = res.Metadata, res.NewBlobs
			adopted, err := m.AdoptAll(ctx, arrivals, slugs, opts)
			if err != nil {
				return err
			}
			out := pullOutput{PullResult: res, Slug: slugs[0], Committed: adopted[0]}
			if rf.asJSON {
				return printJSON(cmd.OutOrStdout(), out)
			}
			reportPull(cmd, m, out)
			return nil
		},
	}
	rf.bind(cmd.Flags())
	f := cmd.Flags()
	f.StringVar(&as, "as", "", "slug to restore the snapshot under (default: the slug it was pushed from)")
	f.BoolVar(&opts.Load, "load", false, "load the snapshot into the bottle's runtime now")
	f.BoolVar(&opts.Force, "force", false, "replace the slug's current snapshot on this host")
	f.StringVar(&opts.Backend, "backend", "", "backend to restore the bottle for (default: from its metadata)")
	f.DurationVar(&idle, "idle-timeout", remote.DefaultIdleTimeout, "give up when the registry sends no byte of a manifest or blob for this long")
	return cmd
}

// reportPull prints what bb pull fetched and restored.
func reportPull(cmd *cobra.Command, m *bottle.Manager, out pullOutput) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "pulled %s as %s\n  digest %s\n  fetched %s in %s (%s already in the store)\n",
		out.Reference, out.Slug, out.Manifest.Digest, progress.Bytes(out.Fetched), out.Duration.Round(1e7), progress.Bytes(out.Present))
	if out.Metadata != nil {
		fmt.Fprintf(w, "  bottle metadata restored to %s (host paths left out; as received: %s)\n", m.Home.StateDir(out.Slug)+"/"+state.MetadataFile, state.ImportedMetadataFile)
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s carries no bottle metadata; only the image was restored\n", out.Reference)
	}
	if out.Committed != "" {
		fmt.Fprintf(w, "  %s -> %s\n", m.Home.StateDir(out.Slug)+"/"+state.CommittedImageFile, out.Committed)
	}
	fmt.Fprintf(w, "to resume it: bb resume %s\n", out.Slug)
}
