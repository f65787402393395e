package cli

import (
	"context"
	"log/slog"
	"os"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/state"
)

// Environment variables naming the runtime CLIs (default: found on PATH).
const (
	EnvContainerBin = "BB_CONTAINER_BIN"
	EnvSmolvmBin    = "BB_SMOLVM_BIN"
)

// runtimes returns every backend bb can drive, by name.
func runtimes(home state.Home, store *oci.Store, log *slog.Logger) map[string]bottle.Runtime {
	rts := map[string]bottle.Runtime{
		bottle.Dir:            &dir.Runtime{Home: home},
		bottle.MacosContainer: &container.Runtime{Home: home, Binary: os.Getenv(EnvContainerBin), Logger: log},
		bottle.Smolmachines: &smolvm.Runtime{Home: home, Binary: os.Getenv(EnvSmolvmBin), Logger: log,
			Pack: pack.Options{Serve: serveStore}},
		// The daemon is reached through DOCKER_HOST etc.; containers bb
		// resume creates join $BB_DOCKER_NETWORK (default: the daemon's).
		bottle.Docker: &docker.Runtime{Store: store, Network: os.Getenv(docker.EnvNetwork), Logger: log},
	}
	return rts
}

// serveStore starts bb's embedded registry, read-only on 127.0.0.1 at a
// free port, for the duration of a smolvm pack.
func serveStore(ctx context.Context, s *oci.Store) (pack.Server, error) {
	return registry.Start(ctx, s, registry.Options{Addr: registry.DefaultAddr})
}
