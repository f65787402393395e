//go:build !linux

package docker

import (
	"context"
	"io"
)

func checkMerged(string) error { return noUpper("not on Linux") }

func startHostTar(context.Context, string, []string, func(context.Context) error) (io.ReadCloser, error) {
	return nil, noUpper("not on Linux")
}

func findSparse(string, []string) (string, bool) { return "", false }

func plannedTarSize(context.Context, string, *plan, []string) (int64, error) {
	return 0, noUpper("not on Linux")
}
