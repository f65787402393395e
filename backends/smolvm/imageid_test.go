package smolvm_test

import (
	"testing"

	"github.com/bot-bottle/bb/internal/testing/backendtest"
)

// TestResumeKeepsAnotherToolsImage: an artifact another tool packs at
// bb's path is booted, not packed over (its file is another one).
func TestResumeKeepsAnotherToolsImage(t *testing.T) {
	backendtest.ResumeKeepsAnotherToolsImage(t, newHarness(t))
}
