package container_test

import (
	"testing"

	"github.com/bot-bottle/bb/internal/testing/backendtest"
)

// TestResumeKeepsAnotherToolsImage: an image another tool loads under
// bb's name is booted, not replaced (container tells which manifests the
// name holds).
func TestResumeKeepsAnotherToolsImage(t *testing.T) {
	backendtest.ResumeKeepsAnotherToolsImage(t, newHarness(t))
}
