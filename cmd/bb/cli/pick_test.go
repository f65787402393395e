package cli

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/docker/docker/api/types/container"
)

// listing is a daemon whose only answer is a fixed container list.
type listing struct {
	docker.Client
	containers []container.Summary
}

func (l listing) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return l.containers, nil
}

func TestPickWithoutTerminal(t *testing.T) {
	ctx := context.Background()
	manager := func(cs ...container.Summary) *bottle.Manager {
		return &bottle.Manager{Runtimes: map[string]bottle.Runtime{
			bottle.Docker: &docker.Runtime{Client: listing{containers: cs}},
		}}
	}
	_, err := pick(ctx, manager(), strings.NewReader(""), io.Discard, "commit")
	if err == nil || !strings.Contains(err.Error(), "no running bottles") || !strings.Contains(err.Error(), "start one") {
		t.Errorf("no bottles: %v", err)
	}
	_, err = pick(ctx, manager(
		container.Summary{Names: []string{"/bot-bottle-alpha"}, State: container.StateRunning},
		container.Summary{Names: []string{"/bot-bottle-beta"}, State: container.StateExited},
		container.Summary{Names: []string{"/bot-bottle-committed-gamma"}, State: container.StateRunning},
		container.Summary{Names: []string{"/other"}, State: container.StateRunning},
	), strings.NewReader(""), io.Discard, "commit")
	if err == nil || !strings.Contains(err.Error(), "no terminal") || !strings.Contains(err.Error(), "alpha (docker)") ||
		strings.Contains(err.Error(), "beta") || strings.Contains(err.Error(), "gamma") {
		t.Errorf("one running bottle: %v", err)
	}
}
