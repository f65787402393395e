// Command bb snapshots running AI-agent bottles into OCI images and moves
// the snapshots between hosts and registries.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/bot-bottle/bb/cmd/bb/cli"
)

// heapLimit is bb's soft heap limit unless GOMEMLIMIT sets one. A commit
// holds a little state per entry of the bottle (8-byte path hashes, ~30 MB
// live for a million files); without a limit the garbage collector lets
// the heap grow to twice what is live, which put bb's peak RSS over
// 100 MiB on a tree of a million files. Under the limit it collects
// sooner instead; past it (many millions of files) it only costs CPU.
const heapLimit = 64 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(heapLimit)
	}
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
