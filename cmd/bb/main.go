// Command bb snapshots running AI-agent bottles into OCI images and moves
// the snapshots between hosts and registries.
package main

import (
	"context"
	"fmt"
	"io"
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
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run runs bb with args and returns its exit status. An error is printed
// with its control characters escaped: it may carry a registry's message
// or a bottle's stderr.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	c := cli.New()
	c.SetArgs(args)
	if err := c.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "bb:", cli.PrintableText(err.Error()))
		return 1
	}
	return 0
}
