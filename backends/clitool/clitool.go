package clitool

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/state"
)

// Tool is a runtime's command-line tool.
type Tool struct {
	// Backend is the backend's name, first in the error of a missing
	// binary ("smolmachines").
	Backend string
	// Name is the binary looked up when none is configured, and the
	// command's name in errors ("smolvm").
	Name string
	// ErrMissing is wrapped by the error of a missing binary.
	ErrMissing error
	// Install says how to get the tool ("Install smolvm (URL)").
	Install string
	// LoginPATH says where a PATH that scripts miss is usually set
	// ("a PATH set only in ~/.zshrc").
	LoginPATH string
	// Env is the variable that names the binary ("BB_SMOLVM_BIN").
	Env string
}

// Lookup returns the path of binary (a name looked up on PATH or a path;
// t.Name when empty). A missing binary gives an error that wraps
// t.ErrMissing and says how to install it or make bb find it.
func (t Tool) Lookup(binary string) (string, error) {
	name := binary
	if name == "" {
		name = t.Name
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w: %q not found (PATH=%s). %s, "+
			"or put its directory on the PATH bb runs with: %s is missing from scripts "+
			"and from `sh -lc`, which read ~/.profile and /etc/profile instead; %s may name the binary: %v",
			t.Backend, t.ErrMissing, name, os.Getenv("PATH"), t.Install, t.LoginPATH, t.Env, err)
	}
	return p, nil
}

// Run runs bin with args and returns its stdout; its error names the
// command (t.Name and args) and carries its stderr.
func (t Tool) Run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	return tarcmd.Run(ctx, exec.CommandContext(ctx, bin, args...), t.Name+" "+strings.Join(args, " "))
}

// List runs bin with args, a listing whose stdout is a JSON array, and
// parses it.
func List[T any](ctx context.Context, t Tool, bin string, args ...string) ([]T, error) {
	out, err := t.Run(ctx, bin, args...)
	if err != nil {
		return nil, err
	}
	var items []T
	if err := json.Unmarshal(bytes.TrimSpace(out), &items); err != nil {
		return nil, fmt.Errorf("parsing %s %s: %w", t.Name, strings.Join(args, " "), err)
	}
	return items, nil
}

// Find returns the item named name (nil if none).
func Find[T any](items []T, name string, nameOf func(*T) string) *T {
	for i := range items {
		if nameOf(&items[i]) == name {
			return &items[i]
		}
	}
	return nil
}

// CheckTar runs tar --version in the bottle name through exec (the
// tool's arguments that run a command in it) and explains what is wrong
// unless it is GNU tar.
func (t Tool) CheckTar(ctx context.Context, bin, name string, exec ...string) error {
	out, err := t.Run(ctx, bin, append(append([]string{}, exec...), tarcmd.VersionArgs...)...)
	return tarcmd.CheckRun(name, out, err)
}

// Replace makes room for the bottle name on resume: a bottle of that
// name that runs stays unless replace is set (bottle.ErrRunning); one
// that exists is removed by remove.
func Replace(name string, exists, running, replace bool, remove func() error) error {
	if !exists {
		return nil
	}
	if running && !replace {
		return fmt.Errorf("%s: %w (pass --replace to replace it)", name, bottle.ErrRunning)
	}
	return remove()
}

// Logger returns l, or a logger that discards everything.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// TempDir returns dir, or <home>/tmp when it is empty: where a backend
// keeps the large temporary files of a commit or a load.
func TempDir(home state.Home, dir string) string {
	if dir != "" {
		return dir
	}
	return filepath.Join(home.Dir, "tmp")
}
