package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// applyWork applies the agent work to a running bottle (docker exec tar -x
// as root) or to a root filesystem directory (host tar -x).
func applyWork(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("apply-work", flag.ExitOnError)
	w := workFlags(fs)
	container := fs.String("container", "", "running Docker container to change")
	dir := fs.String("dir", "", "root filesystem directory to change")
	_ = fs.Parse(args)
	if (*container == "") == (*dir == "") {
		return errors.New("give exactly one of -container NAME and -dir DIR")
	}
	var tarX *exec.Cmd
	if *container != "" {
		tarX = exec.CommandContext(ctx, "docker", "exec", "-i", "--user", "root", *container,
			"tar", "--extract", "--numeric-owner", "--same-permissions", "--file=-", "--directory=/")
	} else {
		tarX = exec.CommandContext(ctx, "tar", "--extract", "--numeric-owner", "--same-permissions", "--file=-", "--directory="+*dir)
	}
	pr, pw := io.Pipe()
	tarX.Stdin = pr
	tarX.Stdout, tarX.Stderr = os.Stderr, os.Stderr
	if err := tarX.Start(); err != nil {
		return err
	}
	n, genErr := writeWork(pw, *w)
	pw.CloseWithError(genErr)
	if err := tarX.Wait(); err != nil {
		return fmt.Errorf("extracting the agent work: %w", err)
	}
	if genErr != nil {
		return genErr
	}
	for _, p := range workDeletes {
		if *container != "" {
			if _, err := quiet(ctx, "docker", "exec", "--user", "root", *container, "rm", "-f", p); err != nil {
				return err
			}
		} else if err := os.Remove(filepath.Join(*dir, p)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	target := *container
	if target == "" {
		target = *dir
	}
	fmt.Fprintf(os.Stderr, "apply-work: %.0f MB of changes written to %s, %d files deleted\n", float64(n)/1e6, target, len(workDeletes))
	return nil
}
