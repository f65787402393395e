package cli

import (
	"log/slog"
	"os"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// runtimes returns every backend bb can drive, by name.
func runtimes(home state.Home, store *oci.Store, log *slog.Logger) map[string]bottle.Runtime {
	rts := map[string]bottle.Runtime{
		bottle.Dir: &dir.Runtime{Home: home},
		// The daemon is reached through DOCKER_HOST etc.; containers bb
		// resume creates join $BB_DOCKER_NETWORK (default: the daemon's).
		bottle.Docker: &docker.Runtime{Store: store, Network: os.Getenv(docker.EnvNetwork), Logger: log},
	}
	return rts
}
