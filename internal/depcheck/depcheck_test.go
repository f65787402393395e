// Package depcheck proves that bb's packages keep their layers: no CLI
// framework and no container runtime SDK below the command line and the
// backends, no core package that reaches up into bottle or a backend, and
// no production package that links the test infrastructure.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/bot-bottle/bb/"

// core are the packages that know nothing of bottles or runtimes: they
// store, stream, verify and move images.
var core = []string{"oci", "oci/layer", "snapshot", "state", "rootfs", "registry", "pack", "archive", "remote", "fileindex"}

// lean are the packages that must not link a CLI framework or a runtime
// SDK: the core and bottle, which drives runtimes through an interface.
var lean = append([]string{"bottle"}, core...)

var sdk = []string{"github.com/spf13/cobra", "github.com/docker/docker/", "github.com/moby/"}

// deps lists the packages pkg links, itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

func TestLeanDependencies(t *testing.T) {
	for _, pkg := range lean {
		for _, dep := range deps(t, module+pkg) {
			for _, f := range sdk {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// TestLayering: the core never imports bottle or a backend, bottle never
// imports a backend (the CLI wires them together).
func TestLayering(t *testing.T) {
	up := map[string][]string{"bottle": {module + "backends/"}}
	for _, pkg := range core {
		up[pkg] = []string{module + "bottle", module + "backends/", module + "cmd/"}
	}
	for pkg, banned := range up {
		for _, dep := range deps(t, module+pkg) {
			for _, b := range banned {
				if dep == b || strings.HasPrefix(dep, b) && strings.HasSuffix(b, "/") {
					t.Errorf("%s imports %s: move the code that needs it up a layer", pkg, dep)
				}
			}
		}
	}
}

// TestNoTestInfrastructureInProduction: internal/testing (stand-ins, test
// registries, fixtures) is linked only by tests and by the benchmark.
func TestNoTestInfrastructureInProduction(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module+"internal/testing/") || strings.HasPrefix(pkg, module+"bench/") {
			continue
		}
		for _, dep := range deps(t, pkg) {
			if strings.HasPrefix(dep, module+"internal/testing/") {
				t.Errorf("%s links the test infrastructure %s", pkg, dep)
			}
		}
	}
}
