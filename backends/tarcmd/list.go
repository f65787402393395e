package tarcmd

import (
	"bytes"
	"context"
	"io"
	"os/exec"

	"github.com/bot-bottle/bb/fileindex"
)

// ListArgs returns the argv (sh -c with GNU find, see
// fileindex.FindScript) that prints a listing of the bottle's root
// filesystem, for incremental commits.
func ListArgs(excludes []string, oneFS bool) []string {
	return []string{"sh", "-c", fileindex.FindScript(excludes, oneFS)}
}

// PathsArgs returns the argv of a GNU tar that writes exactly the
// entries named on its stdin (NUL-separated, relative to /) to stdout,
// without recursing into directories: the changed entries of an
// incremental commit. Entries that vanished since the listing are
// warnings (--ignore-failed-read), as in a full commit.
func PathsArgs() []string {
	return []string{"tar", "--create", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--ignore-failed-read", "--warning=no-file-ignored", "--file=-", "--directory=/",
		"--no-recursion", "--null", "--verbatim-files-from", "--files-from=-"}
}

// PathsInput is the stdin of PathsArgs.
func PathsInput(paths []string) io.Reader {
	var b bytes.Buffer
	for _, p := range paths {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return &b
}

// StartList runs the listing through prefix (the runtime's argv prefix
// that runs a command in the bottle as root).
func StartList(ctx context.Context, prefix []string, what string, excludes []string, oneFS bool) (*Stream, error) {
	argv := append(append([]string{}, prefix...), ListArgs(excludes, oneFS)...)
	return Start(ctx, exec.CommandContext(ctx, argv[0], argv[1:]...), "listing files ("+what+")", false)
}

// StartPaths runs PathsArgs through prefix, which must attach stdin,
// wrapped (Wrap) so that tar's exit status 1 is told from the CLI's.
func StartPaths(ctx context.Context, prefix []string, what string, paths []string) (*Stream, error) {
	argv := append(append([]string{}, prefix...), Wrap(PathsArgs())...)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = PathsInput(paths)
	return StartWrapped(ctx, cmd, what)
}
