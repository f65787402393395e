package cli

import (
	"log/slog"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/state"
)

// runtimes returns every backend bb can drive, by name.
func runtimes(home state.Home, log *slog.Logger) map[string]bottle.Runtime {
	rts := map[string]bottle.Runtime{
		bottle.Dir: &dir.Runtime{Home: home},
	}
	return rts
}
