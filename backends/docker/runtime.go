package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
)

// EnvNetwork names the network mode bb resume gives the containers it
// creates ("none", "host", a network name); empty means the daemon's
// default.
const EnvNetwork = "BB_DOCKER_NETWORK"

// DefaultMaxBaseLayers is the base depth from which a snapshot is
// flattened instead of adding a layer: the daemon refuses images of more
// than about 127 layers, and each commit of a resumed bottle adds one.
const DefaultMaxBaseLayers = 100

// SlugLabel is set on the containers Boot creates.
const SlugLabel = "dev.bot-bottle.slug"

// Runtime drives Docker bottles. The zero value works once Store is set:
// it connects to the daemon named by the environment on first use.
type Runtime struct {
	// Client is the Engine API client; nil means NewClient().
	Client Client
	// Store is bb's store, where the base layers of incremental snapshots
	// are kept. Without it every snapshot is flattened.
	Store *oci.Store
	// Network is the network mode of containers Boot creates; "" is the
	// daemon's default.
	Network string
	// MaxBaseLayers is the base depth from which snapshots are flattened;
	// 0 means DefaultMaxBaseLayers.
	MaxBaseLayers int
	// ChangeList is where incremental snapshots learn what changed:
	// ChangesAuto (the container's upper directory when reachable) or
	// ChangesDaemon.
	ChangeList string
	// Logger receives progress and warnings; nil discards them.
	Logger *slog.Logger
	// Settle is how long Boot watches a started bottle before it calls
	// the resume a success; 0 means bottle.DefaultSettle, negative skips
	// the check.
	Settle time.Duration

	once   sync.Once
	client Client
	err    error

	// storeOnce asks the daemon once for its image store (containerd).
	storeOnce  sync.Once
	containerd bool
}

var _ bottle.Runtime = (*Runtime)(nil)

// Name implements bottle.Runtime.
func (r *Runtime) Name() string { return bottle.Docker }

func (r *Runtime) api() (Client, error) {
	r.once.Do(func() {
		if r.Client != nil {
			r.client = r.Client
			return
		}
		c, err := NewClient()
		if err != nil {
			r.err = fmt.Errorf("connecting to the Docker daemon: %w (is DOCKER_HOST right?)", err)
			return
		}
		r.client = c
	})
	return r.client, r.err
}

func (r *Runtime) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runtime) maxBaseLayers() int {
	if r.MaxBaseLayers > 0 {
		return r.MaxBaseLayers
	}
	return DefaultMaxBaseLayers
}

// slugOf returns the slug of a container name, or "" if the name is
// not a bottle's.
func slugOf(name string) string {
	slug, _ := bottle.SlugOf(name)
	return slug
}

// List implements bottle.Runtime: every container named bot-bottle-<slug>,
// running or not.
func (r *Runtime) List(ctx context.Context) ([]bottle.Info, error) {
	c, err := r.api()
	if err != nil {
		return nil, err
	}
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", "bot-bottle-"))})
	if err != nil {
		return nil, fmt.Errorf("listing Docker containers: %w", err)
	}
	var out []bottle.Info
	for _, ct := range cs {
		for _, n := range ct.Names {
			if slug := slugOf(n); slug != "" {
				out = append(out, bottle.Info{Slug: slug, Name: bottle.Name(slug), Backend: bottle.Docker,
					Running: ct.State == container.StateRunning, Image: ct.Image})
				break
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slug < out[j].Slug })
	return out, nil
}

// Inspect implements bottle.Runtime.
func (r *Runtime) Inspect(ctx context.Context, slug string) (*bottle.Info, error) {
	ci, err := r.inspect(ctx, slug)
	if err != nil {
		return nil, err
	}
	return &bottle.Info{Slug: slug, Name: bottle.Name(slug), Backend: bottle.Docker,
		Running: ci.State != nil && ci.State.Running, Image: ci.Config.Image}, nil
}

func (r *Runtime) inspect(ctx context.Context, slug string) (container.InspectResponse, error) {
	c, err := r.api()
	if err != nil {
		return container.InspectResponse{}, err
	}
	name := bottle.Name(slug)
	ci, err := c.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return ci, fmt.Errorf("container %s: %w (docker ps -a lists containers; bottles are started by the bot-bottle launcher)", name, bottle.ErrNoBottle)
	}
	if err != nil {
		return ci, fmt.Errorf("inspecting container %s: %w", name, err)
	}
	if ci.ContainerJSONBase == nil || ci.Config == nil {
		return ci, fmt.Errorf("inspecting container %s: the daemon returned no state", name)
	}
	return ci, nil
}

// Has implements bottle.Runtime: the daemon has the image committed.
func (r *Runtime) Has(ctx context.Context, committed string) (bool, error) {
	id, err := r.ImageID(ctx, committed)
	return id != "", err
}

// ImageID implements bottle.ImageIdentifier: the ID of the image
// committed names, "" when there is none.
func (r *Runtime) ImageID(ctx context.Context, committed string) (string, error) {
	c, err := r.api()
	if err != nil {
		return "", err
	}
	ii, err := c.ImageInspect(ctx, committed)
	if cerrdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("inspecting image %s: %w", committed, err)
	}
	return ii.ID, nil
}

var _ bottle.ImageIdentifier = (*Runtime)(nil)

// Boot implements bottle.Runtime: it creates bot-bottle-<slug> from
// committed with the image's config and the runtime's network, starts it
// and makes sure /tmp and /var/tmp exist root:root 1777. A running bottle
// of that name is an error unless opts.Replace; a stopped one is removed.
func (r *Runtime) Boot(ctx context.Context, snap bottle.Snapshot, committed string, opts bottle.ResumeOptions) error {
	c, err := r.api()
	if err != nil {
		return err
	}
	name := bottle.Name(snap.Slug)
	if ci, err := c.ContainerInspect(ctx, name); err == nil {
		if ci.State != nil && (ci.State.Running || ci.State.Paused || ci.State.Restarting) && !opts.Replace {
			return fmt.Errorf("container %s: %w (pass --replace to remove it and boot from the snapshot)", name, bottle.ErrRunning)
		}
		if err := c.ContainerRemove(ctx, ci.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("removing the old container %s: %w", name, err)
		}
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspecting container %s: %w", name, err)
	}
	if _, err := c.ImageInspect(ctx, committed); err != nil {
		return fmt.Errorf("image %s: %w", committed, err)
	}
	cfg := &container.Config{Image: committed, Labels: map[string]string{SlugLabel: snap.Slug}}
	host := &container.HostConfig{NetworkMode: container.NetworkMode(r.Network)}
	created, err := c.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		hint := ""
		if r.Network == "" && strings.Contains(err.Error(), "network") {
			hint = " (set " + EnvNetwork + " to a network mode that exists, such as none)"
		}
		return fmt.Errorf("creating container %s from %s: %w%s", name, committed, err, hint)
	}
	for _, w := range created.Warnings {
		r.log().Warn("docker: "+w, "container", name)
	}
	if err := c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		_ = c.ContainerRemove(context.WithoutCancel(ctx), created.ID, container.RemoveOptions{Force: true})
		return fmt.Errorf("starting container %s: %w", name, err)
	}
	res, err := runExec(ctx, c, created.ID, name, []string{"/bin/sh", "-c", bottle.ScratchScript}, nil)
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("exit status %d: %s", res.ExitCode, strings.TrimSpace(res.Stderr+res.Stdout))
	}
	if err != nil {
		r.log().Warn("could not recreate /tmp and /var/tmp as root:root 1777 in the bottle (no /bin/sh?)", "container", name, "err", err)
	}
	return bottle.WatchStart(ctx, bottle.SettleOf(opts.Settle, r.Settle), name, func(ctx context.Context) (*bottle.Exited, error) {
		ci, err := c.ContainerInspect(ctx, created.ID)
		if err != nil {
			return nil, fmt.Errorf("inspecting container %s: %w", name, err)
		}
		if ci.State == nil || ci.State.Running || ci.State.Paused || ci.State.Restarting {
			return nil, nil
		}
		return &bottle.Exited{Code: ci.State.ExitCode, State: ci.State.Status, Output: r.logTail(ctx, c, created.ID)}, nil
	})
}

// logTail returns the last lines of a container's output.
func (r *Runtime) logTail(ctx context.Context, c Client, id string) string {
	rc, err := c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(bottle.LogLines)})
	if err != nil {
		return "(docker logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out bytes.Buffer
	// Without a TTY the daemon multiplexes both streams.
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 64<<10)); err != nil {
		return out.String()
	}
	return out.String()
}
