package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// sample is one timed run of a step.
type sample struct {
	Wall float64 `json:"wall_s"`
	// RSSKiB is the peak resident set of the measured process and of the
	// descendants it waited for (wait4 rusage: the largest single process,
	// not their sum). Work done inside dockerd is not in it.
	RSSKiB int64 `json:"max_rss_kib"`
	// Out is the size of what the step produced (bytes).
	Out int64 `json:"out_bytes"`
	// Stages are durations of a pipeline's parts (seconds), when known.
	Stages map[string]float64 `json:"stages,omitempty"`
	// Log is the end of bb's stderr (warnings; its log with -bb-verbose).
	Log string `json:"log,omitempty"`
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.b)) }

// cmdResult is what a measured command left.
type cmdResult struct {
	sample
	Stdout string
	Stderr string
}

// measure runs argv with env added to the environment and returns its wall
// time and peak RSS. Stdout and stderr are kept (the last 1 MiB / 16 KiB).
func measure(ctx context.Context, env []string, argv ...string) (*cmdResult, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	out := &tailBuffer{max: 1 << 20}
	errb := &tailBuffer{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, errb
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	err := cmd.Run()
	res := &cmdResult{sample: sample{Wall: time.Since(start).Seconds()}, Stdout: string(out.b), Stderr: errb.String()}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.RSSKiB = ru.Maxrss // KiB on Linux
		}
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w: %s", shortArgv(argv), err, lastLines(res.Stderr, 6))
	}
	return res, nil
}

// shell measures a bash script run with pipefail.
func shell(ctx context.Context, env []string, script string) (*cmdResult, error) {
	return measure(ctx, env, "bash", "-o", "pipefail", "-c", script)
}

// quiet runs an untimed helper command and returns its trimmed stdout.
func quiet(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out bytes.Buffer
	errb := &tailBuffer{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = &out, errb
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("%s: %w: %s", shortArgv(argv), err, lastLines(errb.String(), 6))
	}
	return strings.TrimSpace(out.String()), nil
}

func shortArgv(argv []string) string {
	s := strings.ReplaceAll(strings.Join(argv, " "), "\n", "; ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// shQuote quotes s for bash.
func shQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func shJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shQuote(a)
	}
	return strings.Join(q, " ")
}
