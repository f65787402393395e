package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: bbbench COMMAND [flags]

commands:
  run         measure bb and the alternatives on the bench bottles (make bench)
  gen-base    write the generated part of a bench root filesystem into a directory
  gen-work    write the "agent work" tar stream to stdout
  apply-work  apply the agent work to a running bench bottle or a directory
  conformance run the OCI conformance suite against bb serve and docker-registry
  incr-tree   reset|change DIR [MB]: undo or make issue 10's change of a generated 600 MB tree
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runBench(ctx, args)
	case "gen-base":
		err = genBase(args)
	case "gen-work":
		err = genWork(args)
	case "apply-work":
		err = applyWork(ctx, args)
	case "conformance":
		err = runConformance(ctx, args)
	case "incr-tree":
		err = incrTreeCmd(args)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "bbbench: unknown command %q\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bbbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
