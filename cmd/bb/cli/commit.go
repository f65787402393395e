package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/progress"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newCommit(g *globals) *cobra.Command {
	var (
		opts    bottle.CommitOptions
		fromDir string
		slugF   string
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "commit [SLUG]",
		Short: "Snapshot a running bottle so the next resume boots from it",
		Long:  commitLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := g.manager(cmd)
			if err != nil {
				return err
			}
			slug, err := commitSlug(slugF, args, fromDir, &opts)
			if err != nil {
				return err
			}
			if slug == "" {
				slug, err = pick(ctx, m, cmd.InOrStdin(), cmd.ErrOrStderr(), "commit")
				if err != nil {
					return err
				}
			}
			meter := progress.Start(cmd.ErrOrStderr(), "commit "+slug)
			opts.Layer.Progress = meter.Set
			res, err := m.Commit(ctx, slug, opts)
			meter.Stop()
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			printCommit(cmd.OutOrStdout(), cmd.ErrOrStderr(), m, slug, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Backend, "backend", "", "bottle backend: docker, macos-container, smolmachines, dir (default: from metadata.json, else docker)")
	f.StringVar(&fromDir, "from-dir", "", "snapshot this root filesystem directory instead of a running bottle")
	f.StringVar(&slugF, "slug", "", "slug to record the snapshot under (with --from-dir)")
	f.BoolVar(&opts.Prepare.Pause, "pause", false, "pause the bottle while its filesystem is read, for a consistent snapshot (docker; uses the export method)")
	f.BoolVar(&opts.Prepare.IncludeMounts, "include-mounts", false, "include volumes and bind mounts in the snapshot")
	f.BoolVar(&opts.Prepare.Full, "full", false, "one flattened layer: not the base image's layers plus a diff (docker), not one more layer on the previous snapshot (other backends)")
	f.StringVar(&opts.Prepare.Method, "method", "", "how the filesystem leaves the bottle (default per backend): exec (GNU tar in the bottle, through exec), export (the runtime's export: docker, macos-container) or cp (smolmachines: tar to a file in the guest, then smolvm machine cp)")
	f.BoolVar(&opts.Prepare.KeepEnv, "keep-env", false, "keep the bottle's runtime environment in the snapshot (default: the base image's Env); runtime environments often carry tokens and keys, which would then travel with every export and push")
	f.BoolVar(&opts.NoLoad, "no-load", false, "store the snapshot without loading it into the runtime now (committed-image keeps the previous one); the next bb resume loads it")
	f.IntVar(&opts.Keep, "keep", bottle.DefaultKeep, "earlier snapshots of the slug to keep in the store (-1 keeps all)")
	f.IntVar(&opts.Layer.Level, "compression-level", 0, "gzip level 1-9 (default 1: fastest); for zstd, above 3 means zstd's default level instead of its fastest")
	f.Var(compressionFlag{&opts.Layer.Compression}, "compression", "layer compression in the store: gzip (default: every reader) or zstd (faster and smaller; Docker before 23 cannot read it: bb export --compression gzip converts, and loads into Docker decompress it); push and export carry it as stored unless their --compression converts")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// commitLong is bb commit's help text.
const commitLong = `Snapshot the running bottle bot-bottle-SLUG while it keeps running.

The root filesystem streams out of the bottle, is compressed on every core
into bb's store, assembled into an OCI image that keeps the base image's
config, and loaded into the bottle's runtime as bot-bottle-committed-SLUG.
~/.bot-bottle/state/SLUG/committed-image then names it, so the next resume
boots from the snapshot.

The snapshot's config takes the bottle's own entrypoint, command, working
directory and user (as docker commit does) wherever the runtime reports
them; its environment stays the base image's unless --keep-env is given,
because the environment a bottle was started with often carries tokens.

Without SLUG, bb asks which running bottle to commit (on a terminal).
With --from-dir, a root filesystem directory on this host is snapshotted
instead (no container runtime needed).

On the dir, macos-container and smolmachines backends, each snapshot
stores a file index (a listing of the bottle), and the next commit lists
the bottle again and streams only what changed, as one more layer on the
previous snapshot, with whiteouts for deletions (see bb diff). A chain of
64 layers, a resume (every inode is new), or --full make the next
snapshot one flattened layer again.`

// commitSlug is the slug bb commit was given (as an argument or with
// --slug; "" for none); with --from-dir it sets opts to snapshot that
// directory.
func commitSlug(slugF string, args []string, fromDir string, opts *bottle.CommitOptions) (string, error) {
	slug := slugF
	if len(args) == 1 {
		if slug != "" && slug != args[0] {
			return "", fmt.Errorf("give the slug once: as an argument or with --slug")
		}
		slug = args[0]
	}
	if fromDir != "" {
		if slug == "" {
			return "", errors.New("--from-dir needs --slug NAME")
		}
		// Recorded as the bottle's directory once the snapshot is stored.
		opts.Prepare.Dir = fromDir
		opts.Backend = bottle.Dir
	}
	return slug, nil
}

// printCommit reports a commit to out, warnings to errOut.
func printCommit(out, errOut io.Writer, m *bottle.Manager, slug string, res *bottle.CommitResult) {
	fmt.Fprintf(out, "committed %s (%s): %s\n", slug, res.Backend, res.Digest)
	fmt.Fprintf(out, "  layer %s, %s compressed from %s of tar, %d entries, in %s\n",
		res.Layer.Digest, progress.Bytes(res.Layer.Size), progress.Bytes(res.Stats.TarBytes), res.Stats.Entries, res.Duration.Round(1e7))
	if n := res.Stats.Reserved; n > 0 {
		fmt.Fprintf(out, "  left out %d entries whose names are reserved for whiteouts (.wh.*): see the warning\n", n)
	}
	if inc := res.Incremental; inc != nil {
		if inc.Parent != "" {
			fmt.Fprintf(out, "  incremental: layer %d on %s: %d added, %d changed, %d deleted (%s of files); listed %d entries in %s\n",
				inc.Depth, inc.Parent, inc.Added, inc.Changed, inc.Deleted, progress.Bytes(inc.Bytes), inc.Entries, inc.Listing.Round(1e6))
		} else {
			fmt.Fprintf(out, "  full snapshot (%s)\n", inc.Full)
		}
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(errOut, "warning: %s\n", PrintableText(w))
	}
	if res.Committed != "" {
		fmt.Fprintf(out, "  %s -> %s\n", m.Home.StateDir(slug)+"/committed-image", res.Committed)
		fmt.Fprintf(out, "to resume from this snapshot: bb resume %s\n", slug)
	}
	fmt.Fprintf(out, "to move it to another host:   bb export %s -o %s.tar   (then bb import %s.tar there)\n", slug, slug, slug)
}

// pick asks which running bottle to use, on a terminal; elsewhere it
// fails with the list.
func pick(ctx context.Context, m *bottle.Manager, in io.Reader, out io.Writer, verb string) (string, error) {
	var running []bottle.Info
	names := make([]string, 0, len(m.Runtimes))
	for n := range m.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if n == bottle.Dir {
			continue
		}
		bs, err := m.Runtimes[n].List(ctx)
		if err != nil {
			continue
		}
		for _, b := range bs {
			if b.Running {
				running = append(running, b)
			}
		}
	}
	if len(running) == 0 {
		return "", fmt.Errorf("no running bottles to %s: start one with the bot-bottle launcher (./cli.py start), or snapshot a directory with bb commit --from-dir PATH --slug NAME", verb)
	}
	var list strings.Builder
	for i, b := range running {
		fmt.Fprintf(&list, "  %d) %s (%s)\n", i+1, b.Slug, b.Backend)
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", fmt.Errorf("no SLUG given and no terminal to ask on; running bottles:\n%s", strings.TrimRight(list.String(), "\n"))
	}
	fmt.Fprintf(out, "Running bottles:\n%sBottle to %s [1-%d]: ", list.String(), verb, len(running))
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return "", errors.New("no bottle chosen")
	}
	line = strings.TrimSpace(line)
	if n, err := strconv.Atoi(line); err == nil && n >= 1 && n <= len(running) {
		return running[n-1].Slug, nil
	}
	for _, b := range running {
		if b.Slug == line {
			return b.Slug, nil
		}
	}
	return "", fmt.Errorf("%q is not one of the running bottles", line)
}

// compressionFlag is --compression of bb commit.
type compressionFlag struct{ c *layer.Compression }

func (f compressionFlag) String() string {
	if f.c == nil || *f.c == "" {
		return string(layer.Gzip)
	}
	return string(*f.c)
}

func (f compressionFlag) Set(v string) error {
	switch layer.Compression(v) {
	case layer.Gzip, layer.Zstd:
		*f.c = layer.Compression(v)
		return nil
	}
	return fmt.Errorf("unknown compression %q: gzip or zstd", v)
}

func (f compressionFlag) Type() string { return "gzip|zstd" }
