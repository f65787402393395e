package container_test

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/bot-bottle/bb/internal/testing/backendtest"
)

var standins string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 && os.Getenv("CI") == "" {
		os.Exit(m.Run()) // the tests skip themselves
	}
	dir, cleanup, err := backendtest.BuildStandins()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standins = dir
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func newHarness(t *testing.T) *backendtest.ContainerHarness {
	return backendtest.NewContainerHarness(t, standins)
}

func cli(t testing.TB, stdin io.Reader, args ...string) ([]byte, error) {
	return backendtest.CLI(t, stdin, "container", args...)
}

func mustCLI(t testing.TB, args ...string) []byte {
	t.Helper()
	return backendtest.MustCLI(t, "container", args...)
}

func TestBackendSuite(t *testing.T) {
	backendtest.Run(t, newHarness(t))
}
