// Command smolvm is a stand-in for the smolvm CLI, for tests on machines
// without a hypervisor. It accepts the argv forms bb uses (machine ls,
// exec, cp, create, start, stop, delete; pack create) and follows smolvm
// 1.9.3's flags, JSON and messages, including the 11 MiB cap on exec
// output that is not streamed with -i. Machines are root filesystem
// directories under $BB_STANDIN_ROOT/smolvm; exec runs chrooted into them.
//
// Test hooks: a file named interactive-session in a machine's directory
// makes every exec fail the way smolvm does while an interactive session
// holds the VM (exit status 1, no output); BB_STANDIN_SMOLVM_REMAP_OWNER=UID
// makes pack create re-own every file to UID, as smolvm releases before
// 1.8.1 did on macOS; BB_STANDIN_SMOLVM_NO_STDIN=1 makes exec
// -i fail (a host where the interactive relay does not work), so callers'
// fallback to tar-to-file and machine cp can be tested; a file named state
// in a machine's directory sets the state machine ls reports.
// SMOLVM_FILE_TRANSFER_MAX_BYTES caps machine cp as it does smolvm's.
// pack create unpacks layers as smolvm's guest does (no xattrs, parents
// 0755; see unpack.go and internal/testing/standin/README.md).
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

// Version is the smolvm release whose behaviour this stand-in follows.
const Version = "1.9.3"

// MaxExecOutput is smolvm's per-stream cap on captured exec output
// (crates/smolvm-agent/src/process.rs MAX_EXEC_OUTPUT).
const MaxExecOutput = 11 * 1024 * 1024

// EnvRemapOwner makes pack create re-own every file to the given uid.
const EnvRemapOwner = "BB_STANDIN_SMOLVM_REMAP_OWNER"

// EnvNoStdin makes exec -i fail.
const EnvNoStdin = "BB_STANDIN_SMOLVM_NO_STDIN"

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
	if len(args) == 0 {
		return errors.New("usage: smolvm <machine|pack> ...")
	}
	switch args[0] {
	case "--version", "-V", "version":
		fmt.Printf("smolvm %s\n", Version)
		return nil
	}
	st, err := openState()
	if err != nil {
		return err
	}
	if len(args) < 2 {
		return fmt.Errorf("usage: smolvm %s <subcommand>", args[0])
	}
	switch args[0] {
	case "machine":
		switch args[1] {
		case "ls", "list":
			return st.cmdLs(args[2:])
		case "exec":
			return st.cmdExec(ctx, args[2:])
		case "cp":
			return st.cmdCp(ctx, args[2:])
		case "create":
			return st.cmdCreate(ctx, args[2:])
		case "start":
			return st.cmdStart(args[2:])
		case "stop":
			return st.cmdStop(args[2:])
		case "delete", "rm":
			return st.cmdDelete(args[2:])
		}
	case "pack":
		if args[1] == "create" {
			return st.cmdPackCreate(ctx, args[2:])
		}
	}
	return fmt.Errorf("unrecognized subcommand '%s %s'", args[0], args[1])
}

// flags is a small clap-like parser: known flags with and without values,
// positionals, and everything after "--" (or, with trailing, after the
// first positional) as the command.
type flags struct {
	bools   map[string]bool
	values  map[string][]string
	pos     []string
	command []string
}

func parseFlags(args []string, boolFlags, valueFlags []string, trailing bool) (*flags, error) {
	f := &flags{bools: map[string]bool{}, values: map[string][]string{}}
	isBool := map[string]bool{}
	for _, b := range boolFlags {
		isBool[b] = true
	}
	isValue := map[string]bool{}
	for _, v := range valueFlags {
		isValue[v] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			f.command = args[i+1:]
			return f, nil
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if trailing {
				f.command = args[i:]
				return f, nil
			}
			f.pos = append(f.pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(a, "=")
		// Combined short flags: -it.
		if !strings.HasPrefix(a, "--") && len(a) > 2 && !hasVal {
			ok := true
			for _, c := range a[1:] {
				if !isBool["-"+string(c)] {
					ok = false
				}
			}
			if ok {
				for _, c := range a[1:] {
					f.bools["-"+string(c)] = true
				}
				continue
			}
		}
		switch {
		case isBool[name] && !hasVal:
			f.bools[name] = true
		case isValue[name]:
			if !hasVal {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("a value is required for '%s <VALUE>' but none was supplied", name)
				}
				i++
				val = args[i]
			}
			f.values[name] = append(f.values[name], val)
		default:
			return nil, fmt.Errorf("unexpected argument '%s' found", a)
		}
	}
	return f, nil
}

func (f *flags) has(names ...string) bool {
	for _, n := range names {
		if f.bools[n] {
			return true
		}
	}
	return false
}

func (f *flags) value(names ...string) string {
	for _, n := range names {
		if v := f.values[n]; len(v) > 0 {
			return v[len(v)-1]
		}
	}
	return ""
}

func (f *flags) all(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, f.values[n]...)
	}
	return out
}
