// Command container is a stand-in for Apple's container CLI, for tests on
// machines without macOS. It accepts the argv forms bb uses (list, inspect,
// exec, export, run, stop, delete, image load/list/inspect/delete) and
// follows container 1.2.2's output formats and messages. Containers are
// root filesystem directories under $BB_STANDIN_ROOT/container; exec runs
// chrooted into them; images live in an OCI layout next to them.
//
// BB_STANDIN_CONTAINER_REGISTRY_DOMAIN models the user's default registry
// domain (registry.domain); BB_STANDIN_CONTAINER_DRAIN_TIMEOUT shortens
// exec's 3 s drain after the process exits, for tests.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Version is the container CLI release whose behaviour this stand-in follows.
const Version = "1.2.2"

// cliError is printed as the real CLI prints a ContainerizationError.
type cliError struct {
	code string
	msg  string
	exit int
}

func (e *cliError) Error() string { return fmt.Sprintf("%s: %q", e.code, e.msg) }

func errf(code, format string, a ...any) error {
	return &cliError{code: code, msg: fmt.Sprintf(format, a...), exit: 1}
}

// exitCode makes the stand-in exit with status n without a message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	var ec exitCode
	switch {
	case err == nil:
	case errors.As(err, &ec):
		os.Exit(int(ec))
	default:
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	args = dropDebug(args)
	if len(args) == 0 {
		return errf("invalidArgument", "usage: container <subcommand>")
	}
	st, err := openState()
	if err != nil {
		return err
	}
	switch args[0] {
	case "--version", "-v":
		fmt.Printf("container CLI version %s (build: release, commit: standin)\n", Version)
		return nil
	case "list", "ls":
		return st.cmdList(args[1:])
	case "inspect":
		return st.cmdInspect(args[1:])
	case "run":
		return st.cmdRun(ctx, args[1:])
	case "exec":
		return st.cmdExec(ctx, args[1:])
	case "export":
		return st.cmdExport(ctx, args[1:])
	case "stop", "kill":
		return st.cmdStop(args[1:])
	case "delete", "rm":
		return st.cmdDelete(args[1:])
	case "logs":
		return st.cmdLogs(args[1:])
	case "image", "i":
		if len(args) < 2 {
			return errf("invalidArgument", "usage: container image <load|list|inspect|delete>")
		}
		switch args[1] {
		case "load":
			return st.cmdImageLoad(ctx, args[2:])
		case "list", "ls":
			return st.cmdImageList(args[2:])
		case "inspect":
			return st.cmdImageInspect(args[2:])
		case "delete", "rm":
			return st.cmdImageDelete(args[2:])
		}
		return errf("invalidArgument", "unknown image subcommand %q", args[1])
	}
	return errf("invalidArgument", "unknown subcommand %q", args[0])
}

func dropDebug(args []string) []string {
	out := args[:0:0]
	for _, a := range args {
		if a != "--debug" {
			out = append(out, a)
		}
	}
	return out
}

// flagValue splits "--name=x" or takes the next argument for "--name x".
func flagValue(args []string, i int) (string, int, error) {
	if _, v, ok := strings.Cut(args[i], "="); ok && strings.HasPrefix(args[i], "--") {
		return v, i, nil
	}
	if i+1 >= len(args) {
		return "", i, errf("invalidArgument", "missing value for %s", args[i])
	}
	return args[i+1], i + 1, nil
}

func flagName(a string) string {
	n, _, _ := strings.Cut(a, "=")
	return n
}
