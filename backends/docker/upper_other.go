//go:build !linux

package docker

import (
	"context"

	"github.com/docker/docker/api/types/container"
)

func (u *upperLayer) changes(context.Context, map[string]bool) ([]container.FilesystemChange, error) {
	return nil, noUpper("not on Linux")
}
