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
		out        string
		asJSON     bool
		noMetadata bool
		compress   string
	)
	cmd := &cobra.Command{
		Use:   "export SLUG|TAG|DIGEST [...] -o FILE",
		Short: "Write snapshots to one archive file, to carry them to another host",
		Long: `Write snapshots from bb's store into one tar archive.

The archive is at once an OCI image layout (oci-layout, index.json,
blobs/sha256) and a docker archive (manifest.json), so docker load,
podman load, ctr image import, skopeo (oci-archive: and
docker-archive:), crane, oras, regctl and Apple's container image load
all read it. Each snapshot is named bot-bottle-committed-SLUG:latest and
carries the bottle's metadata as an OCI artifact whose subject is the
snapshot: index.json names one image index per snapshot that holds the
image and that artifact, so tools that take the one image of a layout
need no name (skopeo copy oci-archive:FILE ..., crane push DIR REF), and
oras discover --oci-layout --platform linux/amd64 DIR:latest finds the
metadata (regctl artifact tree ocidir://DIR shows it as the index's
second entry). Each snapshot's org.opencontainers.image.ref.name is "latest"
in a one-snapshot archive, else bot-bottle-committed-SLUG.
--no-metadata leaves the metadata out and names the image manifest
itself, for tools that read one manifest per name (umoci 0.4.7).
Blobs are copied as they are, without recompression, unless
--compression gzip is given: a snapshot whose layers are zstd (imported
from another tool) is then written with gzip layers (same diffIDs and
config, new layer digests and manifest), which Docker 20.10's docker
load and other readers without zstd need (the gzip layers stay in the
store, unreferenced, until bb gc removes them).

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
			opts := archive.ExportOptions{Progress: meter.Set, NoMetadata: noMetadata, Compression: compress}
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
			for _, slug := range res.Zstd {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s has zstd layers, which docker load before Docker 23 cannot read; --compression gzip writes them as gzip\n", slug)
			}
			for _, slug := range res.Converted {
				fmt.Fprintf(report, "%s: zstd layers written as gzip (new manifest digest)\n", slug)
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
	f.StringVar(&compress, "compression", "as-stored", "layer compression: as-stored (copy blobs as they are) or gzip (write zstd layers as gzip, for Docker before 23 and other readers without zstd; such a snapshot gets a new manifest digest)")
	f.BoolVar(&noMetadata, "no-metadata", false, "leave the bottle metadata out (for umoci and other tools that want one manifest per name)")
	return cmd
}
