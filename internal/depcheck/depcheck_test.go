// Package depcheck proves that bb's core packages stay lean: no CLI
// framework and no container runtime SDK below the command line and the
// backends.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

var core = []string{"oci", "oci/layer", "snapshot", "state", "rootfs", "registry", "pack", "archive", "remote"}

var forbidden = []string{"github.com/spf13/cobra", "github.com/docker/docker/", "github.com/moby/"}

func TestCoreDependencies(t *testing.T) {
	for _, pkg := range core {
		out, err := exec.Command("go", "list", "-deps", "github.com/bot-bottle/bb/"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
