package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	"github.com/spf13/cobra"
)

// EnvStore overrides the store location.
const EnvStore = "BB_STORE"

// globals are the root command's flags.
type globals struct {
	home    string
	store   string
	verbose bool
}

// New returns bb's root command.
func New() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "bb",
		Short: "Snapshot running agent bottles into OCI images and move them between hosts",
		Long: `bb freezes the filesystem of a running bottle (a Docker container, an Apple
container or a smolvm microVM named bot-bottle-<slug>) into an OCI image,
boots the bottle again from it, and moves snapshots between hosts and
registries.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "bb and bot-bottle home (default $BB_HOME or ~/.bot-bottle)")
	root.PersistentFlags().StringVar(&g.store, "store", "", "local OCI store (default $BB_STORE or <home>/oci)")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what bb does to stderr")
	root.AddCommand(
		newCommit(g),
		newResume(g),
		newList(g),
		newInspect(g),
		newGC(g),
		newRm(g),
		newDiff(g),
		newExport(g),
		newImport(g),
		newPush(g),
		newPull(g),
		newServe(g),
		newDoctor(g),
		newVersion(),
	)
	return root
}

func (g *globals) homeDir() state.Home {
	if g.home != "" {
		return state.Home{Dir: g.home}
	}
	return state.Home{Dir: state.DefaultHome()}
}

func (g *globals) storeDir() string {
	if g.store != "" {
		return g.store
	}
	if s := os.Getenv(EnvStore); s != "" {
		return s
	}
	return g.homeDir().StoreDir()
}

func (g *globals) logger(w io.Writer) *slog.Logger {
	level := slog.LevelWarn
	if g.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// openStore opens the local store; what it repairs on its own (modes it
// tightens) is reported on stderr.
func (g *globals) openStore() (*oci.Store, error) {
	return oci.Open(g.storeDir(), oci.WithLogger(g.logger(os.Stderr)))
}

// manager builds a bottle.Manager with every runtime bb knows.
func (g *globals) manager(cmd *cobra.Command) (*bottle.Manager, error) {
	s, err := g.openStore()
	if err != nil {
		return nil, err
	}
	home := g.homeDir()
	log := g.logger(cmd.ErrOrStderr())
	if err := home.Secure(log); err != nil {
		log.Warn("could not make bb's home private", "home", home.Dir, "err", err)
	}
	return &bottle.Manager{Home: home, Store: s, Runtimes: runtimes(home, s, log), Logger: log}, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}
