package registry_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeanDependencies keeps the registry free of the CLI and of
// container runtime SDKs, so that other packages can embed it.
func TestLeanDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/bot-bottle/bb/registry").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/spf13/cobra", "github.com/docker/docker", "github.com/docker/cli"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("registry depends on %s", dep)
			}
		}
	}
}
