package container_test

import (
	"testing"

	"github.com/bot-bottle/bb/internal/testing/backendtest"
)

// Files named like whiteouts in the bottle: left out, named, and the
// files they would hide resume.
func TestReservedNames(t *testing.T) {
	backendtest.ReservedNames(t, newHarness(t))
}
