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
