package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/internal/ociconformance"
)

// conformanceRuns are the suite's runs against each registry: a slug and
// a nested repository name in both roles, one after the other against the
// same server (as cmd/bb/cli's TestOCIConformance runs it).
var conformanceRuns = [][2]string{
	{"bb-conformance", "bb-conformance/nested/repo"},
	{"bb-conformance/nested/repo", "bb-conformance"},
}

// runConformance runs the OCI conformance suite against bb serve
// --allow-push --allow-delete and against Debian's docker-registry
// (distribution 2.8, deletes enabled), and prints the per-workflow counts
// side by side (also to BENCH_DIR/conformance.md).
func runConformance(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	bb := fs.String("bb", "bin/bb", "bb binary")
	benchDir := fs.String("bench-dir", ".bench", "output directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	bin, err := ociconformance.Binary(ctx)
	if err != nil {
		return err
	}
	work := filepath.Join(*benchDir, "conformance")
	if err := os.RemoveAll(work); err != nil {
		return err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	counts := map[string][]ociconformance.Counts{}
	verdict := map[string]string{}

	// bb serve over an empty store.
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	serve := exec.CommandContext(ctx, *bb, "--store", filepath.Join(work, "bb-store"), "serve", "--addr", addr, "--allow-push", "--allow-delete")
	serve.Stdout, serve.Stderr = os.Stderr, os.Stderr
	if err := serve.Start(); err != nil {
		return fmt.Errorf("starting bb serve: %w", err)
	}
	defer func() { _ = serve.Process.Kill(); _ = serve.Wait() }()
	if err := waitHTTP(ctx, "http://"+addr+"/v2/", 10*time.Second); err != nil {
		return fmt.Errorf("bb serve did not come up: %w", err)
	}
	if err := conformanceOn(ctx, bin, "bb serve", addr, work, counts, verdict); err != nil {
		return err
	}

	reg, err := startRegistry(ctx, filepath.Join(work, "docker-registry"))
	if err != nil {
		return err
	}
	defer reg.Stop()
	if err := conformanceOn(ctx, bin, "docker-registry", reg.Addr, work, counts, verdict); err != nil {
		return err
	}

	var b strings.Builder
	fmt.Fprintf(&b, "OCI conformance (%s@%s), test cases passed/failed/errors/skipped per run\n\n", ociconformance.Module, ociconformance.Version)
	fmt.Fprintf(&b, "| workflow | bb serve run 1 | run 2 | docker-registry run 1 | run 2 |\n|---|---|---|---|---|\n")
	for _, w := range append(append([]string{}, ociconformance.Workflows...), "ping") {
		fmt.Fprintf(&b, "| %s |", w)
		for _, name := range []string{"bb serve", "docker-registry"} {
			for _, c := range counts[name] {
				n := c[w]
				fmt.Fprintf(&b, " %d/%d/%d/%d |", n[ociconformance.Passed], n[ociconformance.Failure], n[ociconformance.Error], n[ociconformance.Skipped])
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| verdict | %s | | %s | |\n", verdict["bb serve"], verdict["docker-registry"])
	fmt.Print(b.String())
	return os.WriteFile(filepath.Join(*benchDir, "conformance.md"), []byte(b.String()), 0o644)
}

// conformanceOn runs the suite's runs against one registry.
func conformanceOn(ctx context.Context, bin, name, addr, work string, counts map[string][]ociconformance.Counts, verdict map[string]string) error {
	verdict[name] = "pass"
	for i, repos := range conformanceRuns {
		dir := filepath.Join(work, fmt.Sprintf("%s-run%d", strings.ReplaceAll(name, " ", "-"), i+1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		res, err := ociconformance.Run(ctx, ociconformance.Config{Binary: bin, Registry: addr, Repo1: repos[0], Repo2: repos[1], Dir: dir})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		logf("conformance against %s, run %d: %s in %s (reports in %s)", name, i+1, map[bool]string{true: "pass", false: "FAIL"}[res.Pass], res.Duration.Round(time.Millisecond), dir)
		if !res.Pass {
			verdict[name] = "fail"
		}
		counts[name] = append(counts[name], res.Counts)
	}
	return nil
}
