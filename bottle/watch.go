package bottle

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultSettle is how long a runtime watches a bottle it booted before
// it calls the boot a success: a command that exits at once (a base
// image's CMD that was never meant to run in a bottle) exits well within
// it.
const DefaultSettle = 1500 * time.Millisecond

// LogLines is how many lines of a bottle's output an ExitedError shows.
const LogLines = 20

// ErrExited is returned (wrapped in an *ExitedError) when a booted
// bottle stopped right after it started.
var ErrExited = errors.New("bottle exited right after it started")

// Exited is what a runtime reports of a bottle that is no longer running.
type Exited struct {
	// Code is the exit status of the bottle's command (-1 if unknown).
	Code int
	// State is the runtime's word for it ("exited", "stopped", ...).
	State string
	// Output is the tail of the bottle's output (its logs).
	Output string
}

// ExitedError reports a bottle that stopped right after Boot started it.
type ExitedError struct {
	Name string
	Exited
}

func (e *ExitedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v", e.Name, ErrExited)
	if e.Code >= 0 {
		fmt.Fprintf(&b, " (exit code %d", e.Code)
	} else {
		b.WriteString(" (exit code unknown")
	}
	if e.State != "" {
		fmt.Fprintf(&b, ", state %s", e.State)
	}
	b.WriteString(")")
	out := strings.TrimRight(lastLines(e.Output, LogLines), "\n")
	if strings.TrimSpace(out) == "" {
		b.WriteString("; it printed nothing")
	} else {
		b.WriteString("; its last output:\n" + out + "\n")
	}
	b.WriteString("; the snapshot and committed-image are unchanged: check the entrypoint and cmd that bb inspect SLUG shows")
	return b.String()
}

func (e *ExitedError) Unwrap() error { return ErrExited }

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// SettleOf picks the settle time of a resume: the request's when set,
// else the runtime's.
func SettleOf(request, runtime time.Duration) time.Duration {
	if request != 0 {
		return request
	}
	return runtime
}

// WatchStart checks that a bottle Boot just started is still running
// settle later (DefaultSettle when 0; no check when negative), polling
// check, which returns nil while the bottle runs. A bottle that stopped
// is an *ExitedError.
func WatchStart(ctx context.Context, settle time.Duration, name string, check func(context.Context) (*Exited, error)) error {
	if settle < 0 {
		return nil
	}
	if settle == 0 {
		settle = DefaultSettle
	}
	step := settle / 6
	if step < 50*time.Millisecond {
		step = 50 * time.Millisecond
	}
	deadline := time.Now().Add(settle)
	for {
		ex, err := check(ctx)
		if err != nil {
			return err
		}
		if ex != nil {
			return &ExitedError{Name: name, Exited: *ex}
		}
		if !time.Now().Before(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(step, time.Until(deadline))):
		}
	}
}
