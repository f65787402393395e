package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
)

// Methods of streaming a bottle's root filesystem.
const (
	MethodExec   = "exec"
	MethodExport = "export"
)

// Prepare implements bottle.Runtime: it checks the bottle and the method,
// lists the mount points to leave out, and works out the base of the
// snapshot (ingesting the base image's layers into the store once). It
// inspects the container once (bottle.SelfInspecting).
func (r *Runtime) Prepare(ctx context.Context, slug string, opts bottle.PrepareOptions) (*bottle.Prepared, error) {
	ci, err := r.inspect(ctx, slug)
	if err != nil {
		return nil, err
	}
	c, _ := r.api()
	name := bottle.Name(slug)
	if ci.State == nil || !(ci.State.Running || ci.State.Paused) {
		return nil, fmt.Errorf("%s (%s): %w; start it first, bb commit snapshots running bottles", name, bottle.Docker, bottle.ErrNotRunning)
	}
	method, err := chooseMethod(ci, name, opts)
	if err != nil {
		return nil, err
	}
	var mounts []string
	if !opts.IncludeMounts {
		for _, m := range ci.Mounts {
			if d := cleanRel(m.Destination); d != "" {
				mounts = append(mounts, d)
			}
		}
	}
	ii, err := c.ImageInspect(ctx, ci.Image)
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s of container %s: %w", ci.Config.Image, name, err)
	}
	base := snapshot.Base{Ref: ci.Config.Image}
	stored := storedBase{}
	stored.cf, stored.digest = r.storedConfigDigest(ctx, ii)
	base.Config = stored.cf
	if base.Config == nil {
		base.Config = configFromInspect(ii)
	}
	upper, incremental := r.incremental(ctx, c, ci, ii, opts, &base, stored)
	base.Config = bottle.ApplyProcess(base.Config, processOf(ci), opts.KeepEnv)
	hostRead := false
	if incremental && upper != nil && method == MethodExec {
		if err := checkMerged(upper.merged); err != nil {
			r.log().Debug("streaming through tar in the bottle", "container", name, "why", err)
		} else {
			hostRead = true
		}
	}
	if method == MethodExec && !hostRead {
		if err := r.checkTar(ctx, c, ci.ID, name); err != nil {
			return nil, err
		}
	}
	src := &source{c: c, log: r.log(), id: ci.ID, name: name, method: method,
		pause: opts.Pause && !ci.State.Paused, oneFS: !opts.IncludeMounts, diff: incremental, mounts: mounts, upper: upper, hostRead: hostRead, started: ci.State.StartedAt,
		checkTar: func(ctx context.Context) error { return r.checkTar(ctx, c, ci.ID, name) }}
	if opts.Loading && hostRead && !r.containerdStore(ctx, c) {
		// The containerd store's import needs every layer in the archive,
		// so an early load (the diff layer only) cannot work there.
		src.loadBase = ii.RootFS.Layers
	}
	return &bottle.Prepared{
		Source:    src,
		Base:      base,
		Excludes:  mounts,
		CreatedBy: createdBy(method, hostRead, incremental, opts.Pause && !ci.State.Paused),
		Info: &bottle.Info{Slug: slug, Name: name, Backend: bottle.Docker,
			Running: ci.State.Running || ci.State.Paused, Image: ci.Config.Image},
		Release: src.release,
	}, nil
}

// PrepareInspects implements bottle.SelfInspecting.
func (r *Runtime) PrepareInspects() {}

// chooseMethod returns the method of streaming the bottle: opts.Method,
// else exec, or export for a paused bottle or with opts.Pause.
func chooseMethod(ci container.InspectResponse, name string, opts bottle.PrepareOptions) (string, error) {
	method := opts.Method
	if method == "" {
		method = MethodExec
		if opts.Pause || ci.State.Paused {
			method = MethodExport
		}
	}
	switch method {
	case MethodExec:
		if opts.Pause {
			return "", fmt.Errorf("--pause needs --method export: the daemon refuses exec into a paused container")
		}
		if ci.State.Paused {
			return "", fmt.Errorf("container %s is paused and the daemon refuses exec into it: use --method export, or unpause it", name)
		}
		// Prepare checks tar once it is known whether the stream needs it.
	case MethodExport:
		if opts.IncludeMounts && len(ci.Mounts) > 0 {
			return "", fmt.Errorf("--include-mounts needs --method exec: the daemon's export leaves volumes and bind mounts out")
		}
	default:
		return "", fmt.Errorf("unknown method %q for docker bottles: use %s or %s", method, MethodExec, MethodExport)
	}
	return method, nil
}

// incremental decides whether the snapshot builds on the base image's
// layers, and if so puts them into base; upper is the container's
// writable layer where this process can read it.
func (r *Runtime) incremental(ctx context.Context, c Client, ci container.InspectResponse, ii image.InspectResponse, opts bottle.PrepareOptions, base *snapshot.Base, stored storedBase) (upper *upperLayer, ok bool) {
	name := strings.TrimPrefix(ci.Name, "/")
	switch {
	case opts.Full, r.Store == nil, len(ii.RootFS.Layers) == 0:
		return nil, false
	case opts.IncludeMounts && len(ci.Mounts) > 0:
		r.log().Info("mounts are included: making a full snapshot (the change list does not cover mounts)", "container", name)
		return nil, false
	case len(ii.RootFS.Layers) >= r.maxBaseLayers():
		r.log().Info("the base image is deep: flattening this snapshot into one layer", "container", name, "layers", len(ii.RootFS.Layers), "max", r.maxBaseLayers())
		return nil, false
	}
	if r.ChangeList != ChangesDaemon {
		var err error
		if upper, err = findUpper(ci); err != nil {
			r.log().Debug("asking the daemon for the change list", "container", name, "why", err)
		}
	}
	if upper == nil {
		// The change list is JSON: a name that is not UTF-8 arrives with
		// U+FFFD in place of its bytes and cannot be found again. (The
		// upper directory's names are bytes.)
		if changes, err := c.ContainerDiff(ctx, ci.ID); err == nil {
			for _, ch := range changes {
				if strings.ContainsRune(ch.Path, utf8.RuneError) {
					r.log().Info("a changed path is not UTF-8, so the daemon's change list cannot name it: making a full snapshot", "container", name, "path", ch.Path)
					return nil, false
				}
			}
		}
	}
	layers, stored, err := r.baseLayers(ctx, c, ii, stored)
	if err != nil {
		r.log().Warn("cannot build on the base image's layers; making a full snapshot", "container", name, "err", err)
		return nil, false
	}
	// On containerd's image store the image ID is no config digest.
	base.Layers, base.Config, base.ConfigDigest = layers, stored.cf, stored.digest
	return upper, true
}

// createdBy describes the snapshot's method for its history entry.
func createdBy(method string, hostRead, incremental, paused bool) string {
	how := "docker exec tar"
	if hostRead {
		how = "read from the overlay mount"
	}
	if method == MethodExport {
		how = "docker export"
		if paused {
			how += ", paused"
		}
	}
	kind := "full"
	if incremental {
		kind = "diff"
	}
	return fmt.Sprintf("bb commit (%s, %s)", how, kind)
}

// checkTar makes sure the bottle has GNU tar.
func (r *Runtime) checkTar(ctx context.Context, c Client, id, name string) error {
	res, err := runExec(ctx, c, id, name, tarcmd.VersionArgs, nil)
	hint := " (or snapshot it with --method export, which needs no tar in the bottle)"
	if err != nil {
		return fmt.Errorf("running tar --version in %s: %w%s", name, err, hint)
	}
	out := res.Stdout
	if res.ExitCode != 0 {
		if strings.Contains(strings.ToLower(res.Stdout+res.Stderr), "busybox") {
			out = res.Stdout + res.Stderr
		} else {
			out = ""
		}
	}
	if err := tarcmd.CheckVersion(out); err != nil {
		return fmt.Errorf("%s: %w%s", name, err, hint)
	}
	return nil
}

// source streams a Docker bottle's root filesystem.
type source struct {
	c      Client
	log    *slog.Logger
	id     string
	name   string
	method string
	pause  bool
	oneFS  bool
	diff   bool
	mounts []string
	// upper is the container's writable layer when this process can
	// read it: its listing replaces the daemon's change list.
	upper *upperLayer
	// hostRead streams the changed paths from the container's merged
	// directory on this host instead of tar in the bottle.
	hostRead bool
	// started is when the container started (State.StartedAt).
	started string
	// checkTar checks the bottle's tar (Runtime.checkTar).
	checkTar func(ctx context.Context) error
	// loadBase, when set, are the diffIDs of the base image in the
	// daemon, and the commit loads the snapshot: a host read then starts
	// the load early (see earlyLoad).
	loadBase []string
	// early is the early load the stream started, if any.
	early *earlyLoad
}

// release ends the early load if Load did not finish it.
func (s *source) release() {
	if s.early != nil {
		s.early.release()
	}
}

// startEarly plans the size of the layer that streaming pl gives and
// starts the daemon's load of it. Without a plan the load waits for the
// store, as usual.
func (s *source) startEarly(ctx context.Context, pl *plan, excludes []string) {
	if s.loadBase == nil || s.early != nil {
		return
	}
	start := time.Now()
	n, err := plannedTarSize(ctx, s.upper.merged, pl, excludes)
	if err != nil {
		s.log.Debug("not loading into the daemon while the layer is built", "container", s.name, "why", err)
		return
	}
	s.log.Debug("loading into the daemon while the layer is built", "container", s.name, "planned_bytes", n, "planning_took", time.Since(start).Round(time.Millisecond))
	s.early = startEarlyLoad(ctx, s.c, s.log, n, s.loadBase)
}

// Stream implements snapshot.Source.
func (s *source) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	var unpause func()
	if s.pause {
		if err := s.c.ContainerPause(ctx, s.id); err != nil {
			return nil, fmt.Errorf("pausing %s: %w", s.name, err)
		}
		unpause = func() {
			if err := s.c.ContainerUnpause(context.WithoutCancel(ctx), s.id); err != nil {
				s.log.Warn("could not unpause the bottle: run docker unpause "+s.name, "err", err)
			}
		}
	}
	start := time.Now()
	rc, err := s.open(ctx, req)
	if err == nil {
		rc = &timedStream{ReadCloser: rc, log: s.log, name: s.name, start: start}
	}
	if err != nil {
		if unpause != nil {
			unpause()
		}
		return nil, err
	}
	if unpause != nil {
		rc = &hookCloser{ReadCloser: rc, after: unpause}
	}
	if s.early != nil {
		rc = &teeStream{ReadCloser: rc, tee: s.early}
	}
	return rc, nil
}

// teeStream hands the early load to the snapshot pipeline.
type teeStream struct {
	io.ReadCloser
	tee io.Writer
}

// LayerTee implements snapshot.LayerTee.
func (t *teeStream) LayerTee() io.Writer { return t.tee }

// Warnings implements snapshot.Warner by asking the wrapped stream.
func (t *teeStream) Warnings() []string {
	if w, ok := t.ReadCloser.(snapshot.Warner); ok {
		return w.Warnings()
	}
	return nil
}

func (s *source) open(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	var pl *plan
	if s.diff {
		changes, err := s.changes(ctx, req.Excludes)
		if err != nil {
			return nil, err
		}
		pl = newPlan(changes, req.Excludes, s.mounts)
		pl.mark = req.WhiteoutMark
	}
	switch {
	case s.method == MethodExport:
		rc, err := s.c.ContainerExport(ctx, s.id)
		if err != nil {
			return nil, fmt.Errorf("exporting %s: %w", s.name, err)
		}
		if pl != nil {
			return newRewriteStream(rc, pl, true), nil
		}
		return rc, nil
	case pl != nil && len(pl.paths) == 0:
		return newRewriteStream(io.NopCloser(strings.NewReader("")), pl, false), nil
	case pl != nil && s.hostRead && s.sparseToGuest(ctx, pl):
		es, err := startExec(ctx, s.c, s.id, s.name, diffTarArgs(), pl.fileList(), true)
		if err != nil {
			return nil, err
		}
		return newRewriteStream(es, pl, false), nil
	case pl != nil && s.hostRead:
		s.startEarly(ctx, pl, req.Excludes)
		hs, err := startHostTar(ctx, s.upper.merged, pl.paths, s.stillRunning)
		if err != nil {
			return nil, err
		}
		return newRewriteStream(hs, pl, false), nil
	case pl != nil:
		es, err := startExec(ctx, s.c, s.id, s.name, diffTarArgs(), pl.fileList(), true)
		if err != nil {
			return nil, err
		}
		return newRewriteStream(es, pl, false), nil
	default:
		return startExec(ctx, s.c, s.id, s.name, tarcmd.Args("/", req.Excludes, s.oneFS), nil, true)
	}
}

// sparseToGuest says whether the changed paths hold a sparse file and
// the bottle has GNU tar to keep its holes: then tar in the bottle
// streams this snapshot.
func (s *source) sparseToGuest(ctx context.Context, pl *plan) bool {
	p, ok := findSparse(s.upper.merged, pl.paths)
	if !ok {
		return false
	}
	if err := s.checkTar(ctx); err != nil {
		s.log.Warn("a sparse file will be stored with its holes as zeros (no GNU tar in the bottle to keep them)", "container", s.name, "path", p, "err", err)
		return false
	}
	s.log.Info("a sparse file changed: streaming through tar in the bottle, which keeps its holes", "container", s.name, "path", p)
	return true
}

// stillRunning checks that the container runs (or is paused) and was not
// restarted since Prepare.
func (s *source) stillRunning(ctx context.Context) error {
	ci, err := s.c.ContainerInspect(ctx, s.id)
	if err != nil {
		return fmt.Errorf("%s was removed while it was read: %w", s.name, err)
	}
	if ci.State == nil || !(ci.State.Running || ci.State.Paused) || ci.State.StartedAt != s.started {
		return fmt.Errorf("%s was stopped or restarted while it was read", s.name)
	}
	return nil
}

// changes lists what the bottle changed: from its upper directory when
// this process can read it, else from the daemon.
func (s *source) changes(ctx context.Context, excludes []string) ([]container.FilesystemChange, error) {
	start := time.Now()
	if s.upper != nil {
		skip := cleanSet(excludes)
		for _, m := range s.mounts {
			skip[m] = true
		}
		ch, err := s.upper.changes(ctx, skip)
		if err == nil {
			s.log.Debug("listed the changes in the upper directory", "container", s.name, "changes", len(ch), "took", time.Since(start).Round(time.Millisecond))
			return ch, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		s.log.Info("asking the daemon for the change list", "container", s.name, "why", err)
	}
	ch, err := s.c.ContainerDiff(ctx, s.id)
	if err != nil {
		return nil, fmt.Errorf("listing the changes of %s: %w", s.name, err)
	}
	for _, c := range ch {
		if strings.ContainsRune(c.Path, utf8.RuneError) {
			return nil, fmt.Errorf("%s: the daemon's change list cannot name %q (not UTF-8): make a full snapshot (--full)", s.name, c.Path)
		}
	}
	s.log.Debug("the daemon listed the changes", "container", s.name, "changes", len(ch), "took", time.Since(start).Round(time.Millisecond))
	return ch, nil
}

// hookCloser runs after once the stream is closed.
type hookCloser struct {
	io.ReadCloser
	after func()
	done  bool
}

func (h *hookCloser) Close() error {
	err := h.ReadCloser.Close()
	if !h.done {
		h.done = true
		h.after()
	}
	return err
}

// Warnings implements snapshot.Warner by asking the wrapped stream.
func (h *hookCloser) Warnings() []string {
	if w, ok := h.ReadCloser.(snapshot.Warner); ok {
		return w.Warnings()
	}
	return nil
}

// timedStream logs when the stream gives its first byte and its end,
// for bb -v: the time until then is the bottle's and the daemon's, the
// rest is bb's compression and store.
type timedStream struct {
	io.ReadCloser
	log   *slog.Logger
	name  string
	start time.Time
	first time.Duration
	n     int64
	done  bool
}

func (t *timedStream) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if n > 0 && t.n == 0 {
		t.first = time.Since(t.start)
	}
	t.n += int64(n)
	if err != nil && !t.done {
		t.done = true
		t.log.Debug("stream ended", "container", t.name, "bytes", t.n, "first_byte", t.first.Round(time.Millisecond),
			"took", time.Since(t.start).Round(time.Millisecond), "err", err)
	}
	return n, err
}

// Warnings implements snapshot.Warner by asking the wrapped stream.
func (t *timedStream) Warnings() []string {
	if w, ok := t.ReadCloser.(snapshot.Warner); ok {
		return w.Warnings()
	}
	return nil
}

var _ snapshot.Source = (*source)(nil)

// processOf is what docker commit takes from a container: its own
// Entrypoint, Cmd, WorkingDir, User and Env (the image's, merged with
// what docker run set). ci.Path and ci.Args are the same command
// resolved, so Config is enough.
func processOf(ci container.InspectResponse) bottle.Process {
	p := bottle.Process{}
	if c := ci.Config; c != nil {
		// The container's config is complete (the image's values where
		// docker run set none), so an empty one clears the base's.
		p.Entrypoint, p.Cmd = append([]string{}, c.Entrypoint...), append([]string{}, c.Cmd...)
		p.WorkingDir, p.User, p.Env = c.WorkingDir, c.User, c.Env
	}
	return p
}
