package tarcmd

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// run runs script through sh like a runtime CLI would run a Wrap-ped
// command in its guest: cli is the CLI's own exit status after it.
func judgeOf(t *testing.T, tarScript string, cli int) (string, error) {
	t.Helper()
	argv := Wrap([]string{"sh", "-c", tarScript})
	script := `"$@"; s=$?; if [ ` + string(rune('0'+cli)) + ` -ne 0 ]; then exit ` + string(rune('0'+cli)) + `; fi; exit $s`
	cmd := exec.CommandContext(context.Background(), "sh", append([]string{"-c", script, "cli"}, argv...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	return Judge("test", err, stderr.String())
}

func TestJudge(t *testing.T) {
	for _, c := range []struct {
		name string
		tar  string
		cli  int
		warn bool
		fail string
	}{
		{name: "ok", tar: "true"},
		{name: "file changed", tar: "echo changed >&2; exit 1", warn: true},
		{name: "tar failed", tar: "exit 2", fail: "tar exit status 2"},
		{name: "cli failed after tar", tar: "true", cli: 1, fail: "runtime CLI exited 1 after tar exited 0"},
		{name: "cli failed with tar's warning code", tar: "exit 1", cli: 2, fail: "exited 2 after tar exited 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w, err := judgeOf(t, c.tar, c.cli)
			if (w != "") != c.warn {
				t.Errorf("warning %q, want %v", w, c.warn)
			}
			if c.fail == "" && err != nil || c.fail != "" && (err == nil || !strings.Contains(err.Error(), c.fail)) {
				t.Errorf("err = %v, want %q", err, c.fail)
			}
		})
	}
	// A CLI that fails with exit 1 and no marker is never tar's warning.
	err := exec.Command("sh", "-c", "echo 'Error: connection refused' >&2; exit 1").Run()
	if w, ferr := Judge("test", err, "Error: connection refused\n"); w != "" || ferr == nil || !strings.Contains(ferr.Error(), "before tar reported") {
		t.Errorf("CLI failure: warning %q, err %v", w, ferr)
	}
}

// TestReadAhead: the process's output is drained ahead of a reader that
// has not started yet, and arrives whole and in order.
func TestReadAhead(t *testing.T) {
	ctx := context.Background()
	cmd := exec.CommandContext(ctx, "sh", "-c", `i=0; while [ $i -lt 20000 ]; do echo "line $i"; i=$((i+1)); done`)
	s, err := Start(ctx, cmd, "lines", false)
	if err != nil {
		t.Fatal(err)
	}
	s.ReadAhead(1 << 20)
	time.Sleep(300 * time.Millisecond)
	b, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 20000 || lines[0] != "line 0" || lines[19999] != "line 19999" {
		t.Fatalf("got %d lines", len(lines))
	}
	if s.cmd.ProcessState == nil || !s.cmd.ProcessState.Exited() {
		t.Error("the process was not reaped")
	}
}
