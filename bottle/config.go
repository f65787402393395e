package bottle

import (
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Process is what a runtime reports of the process a bottle was started
// with: the command and its setting, as docker commit takes them from the
// container's own config. A nil slice or empty string means the runtime
// did not report it, and the base image's value stays.
type Process struct {
	// Entrypoint and Cmd, when the runtime reports them apart (Docker,
	// smolvm).
	Entrypoint []string
	Cmd        []string
	// Argv is the whole command line, for runtimes that report only that
	// (Apple container's init process): it is split against the base
	// image's Entrypoint.
	Argv       []string
	WorkingDir string
	User       string
	// Env is the bottle's whole environment. It often carries tokens
	// passed at run time, so the snapshot keeps it only with KeepEnv.
	Env []string
}

// ApplyProcess returns a copy of base whose Entrypoint, Cmd, WorkingDir
// and User are the bottle's own (where p reports them), and whose Env is
// the base image's, or the bottle's when keepEnv. base may be nil.
func ApplyProcess(base *v1.ConfigFile, p Process, keepEnv bool) *v1.ConfigFile {
	var cf *v1.ConfigFile
	if base != nil {
		cf = base.DeepCopy()
	} else {
		cf = &v1.ConfigFile{}
	}
	c := &cf.Config
	switch {
	case p.Entrypoint != nil || p.Cmd != nil:
		if p.Entrypoint != nil {
			c.Entrypoint = slices.Clone(p.Entrypoint)
		}
		c.Cmd = slices.Clone(p.Cmd)
	case len(p.Argv) > 0:
		c.Entrypoint, c.Cmd = SplitArgv(c.Entrypoint, p.Argv)
	}
	if p.WorkingDir != "" {
		c.WorkingDir = p.WorkingDir
	}
	if p.User != "" {
		c.User = p.User
	}
	if keepEnv && p.Env != nil {
		c.Env = slices.Clone(p.Env)
	}
	return cf
}

// SplitArgv splits a command line into Entrypoint and Cmd so that
// Entrypoint+Cmd is argv: the image's entrypoint stays when argv starts
// with it; otherwise the command replaced it (run --entrypoint), and argv
// becomes the Cmd of an image without entrypoint.
func SplitArgv(entrypoint, argv []string) ([]string, []string) {
	if len(entrypoint) > 0 && len(argv) >= len(entrypoint) && slices.Equal(argv[:len(entrypoint)], entrypoint) {
		return slices.Clone(entrypoint), slices.Clone(argv[len(entrypoint):])
	}
	return nil, slices.Clone(argv)
}

// PathOnly returns the PATH entries of env (the one setting a snapshot
// takes from a runtime environment without KeepEnv when the base image's
// config is unknown).
func PathOnly(env []string) []string {
	var out []string
	for _, e := range env {
		if strings.HasPrefix(e, "PATH=") {
			out = []string{e}
		}
	}
	return out
}
