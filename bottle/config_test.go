package bottle

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestApplyProcess(t *testing.T) {
	base := &v1.ConfigFile{Config: v1.Config{Entrypoint: []string{"/init"}, Cmd: []string{"serve"}, Env: []string{"PATH=/bin", "A=1"}, WorkingDir: "/", User: "app"}}
	cf := ApplyProcess(base, Process{Entrypoint: []string{}, Cmd: []string{"sleep", "infinity"}, WorkingDir: "/work", User: "0:0", Env: []string{"PATH=/bin", "TOKEN=x"}}, false)
	c := cf.Config
	if len(c.Entrypoint) != 0 || !slices.Equal(c.Cmd, []string{"sleep", "infinity"}) || c.WorkingDir != "/work" || c.User != "0:0" || !slices.Equal(c.Env, base.Config.Env) {
		t.Errorf("without keepEnv: %+v", c)
	}
	if base.Config.Cmd[0] != "serve" {
		t.Error("ApplyProcess changed its input")
	}
	if cf := ApplyProcess(base, Process{Env: []string{"TOKEN=x"}}, true); !slices.Equal(cf.Config.Env, []string{"TOKEN=x"}) || cf.Config.Cmd[0] != "serve" {
		t.Errorf("keepEnv, nothing else reported: %+v", cf.Config)
	}
	// Argv only (Apple container): split against the image's entrypoint.
	if cf := ApplyProcess(base, Process{Argv: []string{"/init", "other"}}, false); !slices.Equal(cf.Config.Entrypoint, []string{"/init"}) || !slices.Equal(cf.Config.Cmd, []string{"other"}) {
		t.Errorf("argv with the entrypoint: %+v", cf.Config)
	}
	if cf := ApplyProcess(base, Process{Argv: []string{"/bin/sh"}}, false); cf.Config.Entrypoint != nil || !slices.Equal(cf.Config.Cmd, []string{"/bin/sh"}) {
		t.Errorf("argv replacing the entrypoint: %+v", cf.Config)
	}
	if cf := ApplyProcess(nil, Process{}, false); cf == nil {
		t.Error("nil base")
	}
}

func TestWatchStart(t *testing.T) {
	ctx := context.Background()
	n := 0
	// The exit shows at the third check, a third of the settle time in:
	// the rest is margin for a loaded machine, where the checks come late.
	err := WatchStart(ctx, 2*time.Second, "bot-bottle-x", func(context.Context) (*Exited, error) {
		n++
		if n == 3 {
			return &Exited{Code: 3, State: "exited", Output: strings.Repeat("line\n", 30) + "last words\n"}, nil
		}
		return nil, nil
	})
	var ee *ExitedError
	if !errors.As(err, &ee) || !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "last words") {
		t.Fatalf("err = %v", err)
	}
	if strings.Count(err.Error(), "line") > LogLines {
		t.Errorf("more than %d lines of output: %v", LogLines, err)
	}
	start := time.Now()
	if err := WatchStart(ctx, 150*time.Millisecond, "x", func(context.Context) (*Exited, error) { return nil, nil }); err != nil || time.Since(start) < 150*time.Millisecond {
		t.Errorf("a running bottle: %v after %v", err, time.Since(start))
	}
	if err := WatchStart(ctx, -1, "x", func(context.Context) (*Exited, error) { return &Exited{}, nil }); err != nil {
		t.Errorf("negative settle checks nothing: %v", err)
	}
}

func TestNameRules(t *testing.T) {
	for slug, ok := range map[string]bool{"a-b_c": true, "a.b": false, "a--b": false, "a-": false} {
		if err := CheckSmolvmName(slug); (err == nil) != ok {
			t.Errorf("smolvm %q: %v", slug, err)
		}
	}
	for slug, ok := range map[string]bool{"a.b": true, strings.Repeat("a", 52): true, strings.Repeat("a", 53): false} {
		if err := CheckContainerName(slug); (err == nil) != ok {
			t.Errorf("container %q: %v", slug, err)
		}
	}
}
