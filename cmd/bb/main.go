// Command bb snapshots running AI-agent bottles into OCI images and moves
// the snapshots between hosts and registries.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/bot-bottle/bb/cmd/bb/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx (bb finishes what must not be cut, such
	// as a push's chunk in flight); a second one stops bb at once.
	go func() { <-ctx.Done(); stop() }()
	err := cli.New().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bb:", err)
		os.Exit(1)
	}
}
