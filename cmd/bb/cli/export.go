package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() { extraCommands = append(extraCommands, newExport) }

func newExport(g *globals) *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "export SLUG|TAG|DIGEST [...] -o FILE",
		Short: "Write snapshots to one archive file, to carry them to another host",
		Long: `Write snapshots from bb's store into one tar archive.

The archive is at once an OCI image layout (oci-layout, index.json,
blobs/sha256) and a docker archive (manifest.json), so docker load,
skopeo (oci-archive: and docker-archive:), umoci, oras and Apple's
container image load all read it. Each snapshot is named
bot-bottle-committed-SLUG:latest and carries the bottle's metadata.
Blobs are copied as they are, without recompression. index.json also
lists the metadata artifact, so name the image when a tool asks for one:
skopeo copy oci-archive:FILE:latest ..., umoci unpack --image DIR:latest.

On the other host: bb import FILE, then bb resume SLUG.`,
		Example: `  bb export demo -o demo.tar
  bb export demo -o - | ssh other-host bb import -`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("give the archive's file name with -o FILE (or -o - for stdout)")
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			meter := progress.Start(cmd.ErrOrStderr(), "export")
			opts := archive.ExportOptions{Progress: meter.Set}
			var res *archive.ExportResult
			if out == "-" {
				w := cmd.OutOrStdout()
				if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					meter.Stop()
					return errors.New("refusing to write an archive to a terminal: redirect stdout or use -o FILE")
				}
				res, err = archive.Export(cmd.Context(), s, w, args, opts)
			} else {
				res, err = archive.ExportFile(cmd.Context(), s, out, args, opts)
			}
			meter.Stop()
			if err != nil {
				return err
			}
			report := cmd.OutOrStdout()
			if out == "-" {
				report = cmd.ErrOrStderr()
			}
			if asJSON {
				return printJSON(report, res)
			}
			for _, img := range res.Images {
				md := ""
				if img.Metadata {
					md = ", with its metadata"
				}
				fmt.Fprintf(report, "exported %s as %s (%s%s)\n", img.Slug, img.Name, img.Digest, md)
			}
			where := out
			if out == "-" {
				where = "stdout"
			}
			fmt.Fprintf(report, "%s: %s in %d blobs, %s\n", where, progress.Bytes(res.Bytes), res.Blobs, res.Duration.Round(1e6))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "archive file to write (- for stdout); written atomically")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
