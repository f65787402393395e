package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newExport(g *globals) *cobra.Command {
	var (
		out        string
		asJSON     bool
		noMetadata bool
		compress   string
		layout     string
	)
	cmd := &cobra.Command{
		Use:   "export SLUG|TAG|DIGEST [...] -o FILE",
		Short: "Write snapshots to one archive file, to carry them to another host",
		Long:  exportLong,
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
			opts := archive.ExportOptions{Progress: meter.Set, NoMetadata: noMetadata, Compression: compress, Layout: layout}
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
			printExport(report, cmd.ErrOrStderr(), res, out, compress)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&out, "output", "o", "", "archive file to write (- for stdout); written atomically")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.StringVar(&compress, "compression", "as-stored", "layer compression: as-stored (copy blobs as they are), gzip (write zstd layers as gzip, for Docker before 23 and other readers without zstd) or zstd (write gzip layers as zstd: smaller); a converted snapshot gets a new manifest digest")
	f.StringVar(&layout, "layout", "single", "index.json layout: single (one entry per snapshot: skopeo and crane take the image without a name) or referrers (the image plus a referrers tag entry: regctl artifact list, oras discover and umoci find image and metadata without extra flags)")
	f.BoolVar(&noMetadata, "no-metadata", false, "leave the bottle metadata out (for umoci and other tools that want one manifest per name)")
	return cmd
}

// exportLong is bb export's help text.
const exportLong = `Write snapshots from bb's store into one tar archive.

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
--layout referrers names the image manifest itself in index.json, plus
a second entry per snapshot: the OCI referrers tag schema's index
(named sha256-<image hex>) listing the metadata artifact. regctl
artifact list ocidir://DIR, oras discover --oci-layout DIR:latest and
umoci unpack --image DIR:latest then work without extra flags, while
skopeo needs the name (oci-archive:FILE:latest) and crane push --index:
no single layout serves both groups (skopeo and crane want exactly one
index.json entry; regctl finds referrers only through a second one).
--no-metadata leaves the metadata out and names the image manifest
itself.
Blobs are copied as they are, without recompression, unless
--compression gzip or zstd is given: a snapshot whose layers are of the
other kind is then written with its layers recompressed (same diffIDs
and config, new layer digests and manifest). gzip is what Docker 20.10's
docker load and other readers without zstd need; zstd is smaller and
faster to decompress for readers that know it (Docker 23+, containerd
1.5+, podman, skopeo, bb; not umoci 0.4.7). The converted copy stays in bb's
store, attached to the snapshot, so the next export or push in that
compression reuses it; it goes when the snapshot goes.

On the other host: bb import FILE, then bb resume SLUG.`

// printExport reports an export of file (- for stdout) in compression
// compress to report, notes to errOut.
func printExport(report, errOut io.Writer, res *archive.ExportResult, file, compress string) {
	for _, slug := range res.Zstd {
		if compress == archive.CompressionZstd {
			break // asked for
		}
		fmt.Fprintf(errOut, "note: %s has zstd layers, which docker load before Docker 23 cannot read; --compression gzip writes them as gzip\n", slug)
	}
	for _, slug := range res.Converted {
		fmt.Fprintf(report, "%s: layers written as %s (new manifest digest)\n", slug, compress)
	}
	for _, img := range res.Images {
		md := ""
		if img.Metadata {
			md = ", with its metadata"
		}
		fmt.Fprintf(report, "exported %s as %s (%s%s)\n", img.Slug, img.Name, img.Digest, md)
	}
	where := file
	if file == "-" {
		where = "stdout"
	}
	fmt.Fprintf(report, "%s: %s in %d blobs, %s\n", where, progress.Bytes(res.Bytes), res.Blobs, res.Duration.Round(1e6))
}
