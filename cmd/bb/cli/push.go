package cli

import (
	"fmt"
	"time"

	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/remote"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// remoteFlags are the registry connection flags of push and pull.
type remoteFlags struct {
	caFile    string
	insecure  bool
	plainHTTP bool
	chunkSize int64
	asJSON    bool
	authWait  time.Duration
}

func (r *remoteFlags) bind(f *pflag.FlagSet) {
	f.StringVar(&r.caFile, "ca-file", "", "PEM file of an extra CA to trust for the registry's TLS certificate (or set SSL_CERT_FILE)")
	f.BoolVar(&r.plainHTTP, "plain-http", false, "allow plain HTTP to a registry that is not on a loopback address")
	f.BoolVar(&r.insecure, "insecure", false, "allow plain HTTP and do not verify the registry's TLS certificate")
	f.BoolVar(&r.asJSON, "json", false, "print the result as JSON")
	f.DurationVar(&r.authWait, "auth-timeout", remote.DefaultAuthTimeout, "give up on a request of the registry's auth handshake (ping, token) that sends no byte for this long, or does not finish within twice it")
}

func (r *remoteFlags) options(g *globals, cmd *cobra.Command, meter *progress.Meter) remote.Options {
	return remote.Options{
		CAFile:      r.caFile,
		Insecure:    r.insecure,
		PlainHTTP:   r.plainHTTP,
		ChunkSize:   r.chunkSize,
		Progress:    meter.Add,
		Logger:      g.logger(cmd.ErrOrStderr()),
		UserAgent:   "bb",
		AuthTimeout: r.authWait,
	}
}

func newPush(g *globals) *cobra.Command {
	var (
		rf          remoteFlags
		compression string
	)
	cmd := &cobra.Command{
		Use:   "push SLUG|TAG|DIGEST REGISTRY/REPO[:TAG]",
		Short: "Send a snapshot to an OCI registry",
		Long: `Send a snapshot from bb's store to an OCI registry, with the bottle's
metadata.json attached as a referrer artifact, so that bb pull restores
the bottle on another host.

Credentials are the docker ones: ~/.docker/config.json (or
$DOCKER_CONFIG/config.json) and docker credential helpers, as written by
docker login. Plain HTTP is used only for registries on a loopback address
unless --plain-http or --insecure is given.

Blobs the registry already has are skipped; blobs another repository of
the same registry holds (as far as bb knows from earlier pushes and pulls)
are mounted instead of sent. Large blobs go up in chunks of --chunk-size;
a push that was interrupted resumes where the registry stopped accepting
when run again. Interrupted (Ctrl-C, SIGTERM), bb push lets the chunk in
flight end (for up to 30 s) before it stops: a chunk cut off half way
makes distribution-based registries drop the whole upload; interrupt
again to stop at once. Without a tag, "latest" is used.

Layers go up as they are stored unless --compression asks for gzip or
zstd: layers of the other kind are then recompressed (each checked
against its digest and diffID while it is read) into a copy of the
snapshot with the same config and a new manifest digest. The copy stays
in bb's store, attached to the snapshot, so the next push or export in
that compression reuses it; it goes when the snapshot goes.`,
		Example: `  bb push demo registry.example.com/bottles/demo:v1
  bb push demo 127.0.0.1:5000/demo --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			comp, err := sendCompression(compression)
			if err != nil {
				return err
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			src, err := s.Resolve(ctx, args[0])
			if err != nil {
				return err
			}
			meter := progress.Start(cmd.ErrOrStderr(), "push "+args[1])
			opts := rf.options(g, cmd, meter)
			opts.Compression = comp
			res, err := remote.Push(ctx, s, src, args[1], opts)
			meter.Stop()
			if err != nil {
				return err
			}
			if rf.asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "pushed %s to %s\n  digest %s\n", args[0], res.Reference, res.Digest)
			counts := map[remote.BlobStatus]int{}
			for _, b := range res.Blobs {
				counts[b.Status]++
			}
			fmt.Fprintf(out, "  sent %s in %s; %d blob(s) uploaded, %d resumed, %d already there (%s), %d mounted (%s)\n",
				progress.Bytes(res.Sent), res.Duration.Round(1e7), counts[remote.BlobUploaded], counts[remote.BlobResumed],
				counts[remote.BlobExists], progress.Bytes(res.Skipped), counts[remote.BlobMounted], progress.Bytes(res.Mounted))
			if c := res.Conversion; c != nil && c.Converted {
				fmt.Fprintf(out, "  layers sent as %s: a copy of the stored %s (%d layer(s) recompressed, %d reused), kept in the store for the next push\n",
					comp, c.Source.Digest, c.Recompressed, c.Reused)
			}
			if res.Metadata != nil {
				fmt.Fprintf(out, "  bottle metadata attached as %s\n", res.Metadata.Digest)
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", PrintableText(w))
			}
			fmt.Fprintf(out, "to restore it on another host: bb pull %s\n", res.Reference)
			return nil
		},
	}
	rf.bind(cmd.Flags())
	cmd.Flags().Int64Var(&rf.chunkSize, "chunk-size", remote.DefaultChunkSize, "upload blobs larger than this in chunks of this many bytes")
	cmd.Flags().StringVar(&compression, "compression", "as-stored", "layer compression to send: as-stored, gzip (every reader; converts zstd layers) or zstd (smaller; Docker 23+, containerd 1.5+; converts gzip layers); a converted copy has a new manifest digest and stays in the store for the next push")
	return cmd
}
