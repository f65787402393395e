package container_test

import (
	"testing"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestMeasureMethods compares container exec tar with container export on
// a ~300 MB root filesystem (BB_MEASURE=1 go test -run Measure -v).
func TestMeasureMethods(t *testing.T) {
	backendtest.RequireMeasure(t)
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	dir := backendtest.BaseRootfs(t, testimage.Options{})
	backendtest.FillRootfs(t, dir, 300)
	h.Start(t, "measure", dir)
	defer h.Remove(t, "measure")
	backendtest.Measure(t, e, bottle.MacosContainer, "measure", 3, map[string]bottle.PrepareOptions{
		"container exec tar": {Method: container.MethodExec},
		"container export":   {Method: container.MethodExport},
	})
}
