package container

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bot-bottle/bb/backends/clitool"
	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// DefaultBinary is the name of Apple's container CLI.
const DefaultBinary = "container"

// Methods of streaming a container's root filesystem.
const (
	MethodExec   = "exec"
	MethodExport = "export"
)

// DefaultPath is the PATH of a snapshot whose base image config is lost.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Runtime drives Apple's container CLI.
type Runtime struct {
	Home state.Home
	// Binary is the container CLI: a name looked up on PATH or a path
	// ("container" when empty).
	Binary string
	// TempDir holds the image archive during a load (<home>/tmp when
	// empty).
	TempDir string
	Logger  *slog.Logger
	// Settle is how long Boot watches a started container (0:
	// bottle.DefaultSettle; negative: no check).
	Settle time.Duration
}

var _ bottle.Runtime = (*Runtime)(nil)

// Name implements bottle.Runtime.
func (r *Runtime) Name() string { return bottle.MacosContainer }

// CheckName implements bottle.NameChecker.
func (r *Runtime) CheckName(slug string) error { return bottle.CheckContainerName(slug) }

func (r *Runtime) log() *slog.Logger { return clitool.Logger(r.Logger) }

// ErrNoCLI is returned when the container CLI cannot be found.
var ErrNoCLI = errors.New("the container CLI (Apple container) is not installed or not on PATH")

// tool is the container CLI.
var tool = clitool.Tool{
	Backend: bottle.MacosContainer, Name: DefaultBinary, ErrMissing: ErrNoCLI,
	Install:   "Install it from https://github.com/apple/container/releases",
	LoginPATH: "a PATH set only in ~/.zshrc", Env: "BB_CONTAINER_BIN",
}

func (r *Runtime) bin() (string, error) { return tool.Lookup(r.Binary) }

func (r *Runtime) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	return tool.Run(ctx, bin, args...)
}

// listed is one container of container list --format json, in the shape
// of container 1.x ({"status":{"state":...}}) or 0.x ({"status":"running"}).
type listed struct {
	ID            string `json:"id"`
	Configuration struct {
		ID    string `json:"id"`
		Image struct {
			Reference string `json:"reference"`
		} `json:"image"`
		InitProcess struct {
			Executable       string   `json:"executable"`
			Arguments        []string `json:"arguments"`
			Environment      []string `json:"environment"`
			WorkingDirectory string   `json:"workingDirectory"`
			User             procUser `json:"user"`
		} `json:"initProcess"`
	} `json:"configuration"`
	Status json.RawMessage `json:"status"`
}

// procUser is ProcessConfiguration.User as Swift encodes it:
// {"raw":{"userString":"node"}} or {"id":{"uid":0,"gid":0}}
// (container 1.2.2 Sources/ContainerResource/Container/ProcessConfiguration.swift).
type procUser struct {
	Raw *struct {
		UserString string `json:"userString"`
	} `json:"raw"`
	ID *struct {
		UID uint32 `json:"uid"`
		GID uint32 `json:"gid"`
	} `json:"id"`
}

func (u procUser) String() string {
	switch {
	case u.Raw != nil:
		return u.Raw.UserString
	case u.ID != nil:
		return fmt.Sprintf("%d:%d", u.ID.UID, u.ID.GID)
	}
	return ""
}

func (l listed) id() string {
	if l.ID != "" {
		return l.ID
	}
	return l.Configuration.ID
}

func (l listed) state() string {
	var s string
	if json.Unmarshal(l.Status, &s) == nil {
		return s
	}
	var o struct {
		State string `json:"state"`
	}
	_ = json.Unmarshal(l.Status, &o)
	return o.State
}

func (r *Runtime) list(ctx context.Context, bin string) ([]listed, error) {
	return clitool.List[listed](ctx, tool, bin, "list", "--all", "--format", "json")
}

func (r *Runtime) find(ctx context.Context, bin, name string) (*listed, error) {
	ls, err := r.list(ctx, bin)
	if err != nil {
		return nil, err
	}
	return clitool.Find(ls, name, (*listed).id), nil
}

// List implements bottle.Runtime.
func (r *Runtime) List(ctx context.Context) ([]bottle.Info, error) {
	bin, err := r.bin()
	if err != nil {
		return nil, err
	}
	ls, err := r.list(ctx, bin)
	if err != nil {
		return nil, err
	}
	var out []bottle.Info
	for _, l := range ls {
		slug, ok := bottle.SlugOf(l.id())
		if !ok {
			continue
		}
		out = append(out, bottle.Info{Slug: slug, Name: l.id(), Backend: bottle.MacosContainer, Running: l.state() == "running", Image: l.Configuration.Image.Reference})
	}
	return out, nil
}

// Inspect implements bottle.Runtime.
func (r *Runtime) Inspect(ctx context.Context, slug string) (*bottle.Info, error) {
	bin, err := r.bin()
	if err != nil {
		return nil, err
	}
	name := bottle.Name(slug)
	l, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("%s: %w in Apple container (container list --all has no such container; a stopped container is deleted, so start the bottle again)", name, bottle.ErrNoBottle)
	}
	return &bottle.Info{Slug: slug, Name: name, Backend: bottle.MacosContainer, Running: l.state() == "running", Image: l.Configuration.Image.Reference}, nil
}

// Prepare implements bottle.Runtime.
func (r *Runtime) Prepare(ctx context.Context, slug string, opts bottle.PrepareOptions) (*bottle.Prepared, error) {
	bin, err := r.bin()
	if err != nil {
		return nil, err
	}
	if opts.Pause {
		return nil, errors.New("macos-container cannot pause a container: use --method export, which freezes the filesystem while it is read")
	}
	name := bottle.Name(slug)
	l, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	if l == nil {
		return nil, fmt.Errorf("%s: %w", name, bottle.ErrNoBottle)
	}
	ip := l.Configuration.InitProcess
	proc := bottle.Process{WorkingDir: ip.WorkingDirectory, User: ip.User.String(), Env: ip.Environment}
	if ip.Executable != "" {
		proc.Argv = append([]string{ip.Executable}, ip.Arguments...)
	}
	base := snapshot.Base{Ref: l.Configuration.Image.Reference,
		Config: bottle.ApplyProcess(r.baseConfig(ctx, bin, l), proc, opts.KeepEnv)}
	p := &bottle.Prepared{Base: base}
	switch opts.Method {
	case "", MethodExec:
		if err := tool.CheckTar(ctx, bin, name, "exec", "--user", "root", name); err != nil {
			return nil, fmt.Errorf("%w; or snapshot it with --method export, which needs no tar in the guest", err)
		}
		p.Source = &ExecSource{Binary: bin, Name: name, OneFS: !opts.IncludeMounts}
		p.CreatedBy = "bb commit (container exec tar)"
	case MethodExport:
		if opts.IncludeMounts {
			r.log().Warn("container export never includes volumes or bind mounts; --include-mounts has no effect", "bottle", name)
		}
		p.Source = &ExportSource{Binary: bin, Name: name}
		p.CreatedBy = "bb commit (container export)"
	default:
		return nil, fmt.Errorf("macos-container: unknown --method %q (exec or export)", opts.Method)
	}
	return p, nil
}

// baseConfig reads the config of the image the container runs, so the
// snapshot keeps its Env, Entrypoint, Cmd, User and WorkingDir (container
// image inspect keeps only those, Labels and StopSignal). When the image
// is gone, only PATH is taken from the container's init process (the
// rest of its environment holds what the launcher passed with
// container run -e); Prepare applies the init process's command,
// working directory and user either way.
func (r *Runtime) baseConfig(ctx context.Context, bin string, l *listed) *v1.ConfigFile {
	ref := l.Configuration.Image.Reference
	cf, err := r.imageConfig(ctx, bin, ref)
	if err == nil {
		return cf
	}
	r.log().Warn("reading the base image config; the snapshot's config comes from the container's init process", "image", ref, "err", err)
	cf = &v1.ConfigFile{Config: v1.Config{Env: bottle.PathOnly(l.Configuration.InitProcess.Environment)}}
	if cf.Config.Env == nil {
		cf.Config.Env = []string{DefaultPath}
	}
	return cf
}

// imageConfig reads an image's config with container image inspect.
func (r *Runtime) imageConfig(ctx context.Context, bin, ref string) (*v1.ConfigFile, error) {
	if ref == "" {
		return nil, errors.New("the container names no image")
	}
	out, err := r.run(ctx, bin, "image", "inspect", QualifiedRef(ref))
	if err != nil {
		return nil, err
	}
	var res []struct {
		Variants []struct {
			Platform v1.Platform     `json:"platform"`
			Config   json.RawMessage `json:"config"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("parsing container image inspect: %w", err)
	}
	if len(res) == 0 || len(res[0].Variants) == 0 {
		return nil, errors.New("container image inspect shows no image config")
	}
	vs := res[0].Variants
	pick := vs[0]
	for _, v := range vs {
		if v.Platform.OS == "linux" && v.Platform.Architecture == runtime.GOARCH {
			pick = v
		}
	}
	return v1.ParseConfigFile(bytes.NewReader(pick.Config))
}

// ExecSource streams a container's root filesystem through GNU tar run
// in it by container exec.
type ExecSource struct {
	Binary, Name string
	OneFS        bool
}

// Stream implements snapshot.Source.
func (s *ExecSource) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	args := append([]string{"exec", "--user", "root", s.Name}, tarcmd.Wrap(tarcmd.Args("/", req.Excludes, s.OneFS))...)
	st, err := tarcmd.StartWrapped(ctx, exec.CommandContext(ctx, s.Binary, args...), "container exec tar in "+s.Name)
	if err != nil {
		return nil, err
	}
	// container exec gives up relaying 3 s after tar exits
	// (ProcessIO.swift:241-258): keep its output moving.
	st.ReadAhead(ReadAhead)
	return st, nil
}

// ReadAhead is how much of container exec's output bb holds in memory
// ahead of the snapshot pipeline.
const ReadAhead = 16 << 20

// ExportSource streams container export of a running container.
type ExportSource struct {
	Binary, Name string
}

// Stream implements snapshot.Source.
func (s *ExportSource) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	st, err := tarcmd.Start(ctx, exec.CommandContext(ctx, s.Binary, "export", s.Name), "container export "+s.Name, false)
	if err != nil {
		return nil, err
	}
	return &exportStream{Stream: st}, nil
}

// exportStream explains container releases that cannot export a running
// container.
type exportStream struct{ *tarcmd.Stream }

func (e *exportStream) Read(p []byte) (int, error) {
	n, err := e.Stream.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && strings.Contains(err.Error(), "not stopped") {
		err = fmt.Errorf("%w (container export of a running container needs container 1.2.1 or later; upgrade, or use --method exec)", err)
	}
	return n, err
}

// QualifiedRef returns ref with a registry domain: container expands a
// short reference with the user's configurable default domain
// (container 1.2.2 ClientImage.normalizeReference, `container system
// property set registry.domain`), which may not be docker.io, where bb
// loads its snapshots. So bb names images in full in image inspect and
// run; committed-image keeps the short name the launcher reads.
func QualifiedRef(ref string) string {
	first, _, ok := strings.Cut(ref, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return ref
	}
	if !ok {
		ref = "library/" + ref
	}
	if !strings.Contains(ref[strings.LastIndex(ref, "/")+1:], ":") && !strings.Contains(ref, "@") {
		ref += ":latest"
	}
	return "docker.io/" + ref
}

// Load implements bottle.Runtime: container image load of an OCI
// layout archive of the snapshot, named state.FullCommittedRef(slug)
// (Apple's container parses the name annotation as a full reference). A
// load is skipped when container already has this manifest under that
// name. When container has an earlier snapshot under that name, the
// archive leaves out the layers of that snapshot: container takes a blob
// its image store holds from the store and never looks for it in the
// archive (see heldLayers), so the load costs what changed. Should
// container lack one of them after all, the whole snapshot is loaded.
func (r *Runtime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	bin, err := r.bin()
	if err != nil {
		return "", err
	}
	committed, full := state.CommittedRef(snap.Slug), state.FullCommittedRef(snap.Slug)
	ds, _ := r.imageDigests(ctx, bin, full)
	for _, d := range ds {
		if d == snap.Manifest.Digest.String() {
			r.log().Info("container already has the snapshot; not loading it again", "image", committed)
			return committed, nil
		}
	}
	img, err := snap.Store.Image(ctx, snap.Manifest.Digest)
	if err != nil {
		return "", err
	}
	if held := heldLayers(ctx, snap.Store, img, ds); len(held) > 0 {
		r.log().Debug("container holds layers of an earlier snapshot; the archive leaves them out", "image", committed, "layers", len(held))
		err := r.loadArchive(ctx, bin, &withoutLayers{Image: img, held: held}, full)
		if err == nil {
			return committed, nil
		}
		if !lostBlob(err, held) {
			return "", err
		}
		r.log().Warn("container no longer holds a layer of its earlier snapshot; loading the whole snapshot", "image", committed, "err", err)
	}
	if err := r.loadArchive(ctx, bin, img, full); err != nil {
		return "", err
	}
	return committed, nil
}

// loadArchive writes img as an OCI layout archive named full into a
// private temporary file, runs container image load -i on it and checks
// the name container reports.
func (r *Runtime) loadArchive(ctx context.Context, bin string, img v1.Image, full string) error {
	dir := clitool.TempDir(r.Home, r.TempDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "container-load-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	err = WriteArchive(ctx, bw, img, full)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing the image archive for container image load: %w", err)
	}
	out, err := r.run(ctx, bin, "image", "load", "-i", f.Name())
	if err != nil {
		return err
	}
	return checkLoaded(out, full)
}

// checkLoaded makes sure container image load reported the image under
// the name bb gave it (releases before containerization 0.14 refuse an
// archive without name annotations; later ones load it as untagged@...).
func checkLoaded(out []byte, full string) error {
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == full || line == strings.TrimPrefix(full, "docker.io/library/") {
			return nil
		}
		if line != "" {
			got = append(got, line)
		}
	}
	return fmt.Errorf("container image load did not load %s (it reported %q): this container release ignores the %s annotation of the archive's index.json", full, got, AppleNameAnnotation)
}

// imageDigests returns the manifest digests container has under ref.
func (r *Runtime) imageDigests(ctx context.Context, bin, ref string) ([]string, error) {
	out, err := r.run(ctx, bin, "image", "inspect", ref)
	if err != nil {
		return nil, err
	}
	var res []struct {
		Variants []struct {
			Digest string `json:"digest"`
		} `json:"variants"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, err
	}
	var ds []string
	for _, r := range res {
		for _, v := range r.Variants {
			ds = append(ds, v.Digest)
		}
	}
	return ds, nil
}

// ImageID implements bottle.ImageIdentifier: the manifest digests
// container has under committed ("" when it has none), so that a resume
// notices an image another tool loaded under bb's name.
func (r *Runtime) ImageID(ctx context.Context, committed string) (string, error) {
	bin, err := r.bin()
	if err != nil {
		return "", err
	}
	ds, err := r.imageDigests(ctx, bin, QualifiedRef(committed))
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			return "", nil
		}
		return "", err
	}
	slices.Sort(ds)
	return strings.Join(ds, ","), nil
}

var _ bottle.ImageIdentifier = (*Runtime)(nil)

// Has implements bottle.Runtime: container image inspect REF.
func (r *Runtime) Has(ctx context.Context, committed string) (bool, error) {
	bin, err := r.bin()
	if err != nil {
		return false, err
	}
	_, err = r.run(ctx, bin, "image", "inspect", QualifiedRef(committed))
	if err == nil {
		return true, nil
	}
	if strings.Contains(err.Error(), "not found") {
		return false, nil
	}
	return false, err
}

// Boot implements bottle.Runtime: container run --detach, then /tmp and
// /var/tmp are recreated.
func (r *Runtime) Boot(ctx context.Context, snap bottle.Snapshot, committed string, opts bottle.ResumeOptions) error {
	bin, err := r.bin()
	if err != nil {
		return err
	}
	name := bottle.Name(snap.Slug)
	l, err := r.find(ctx, bin, name)
	if err != nil {
		return err
	}
	err = clitool.Replace(name, l != nil, l != nil && l.state() == "running", opts.Replace, func() error {
		_, err := r.run(ctx, bin, "delete", "--force", name)
		return err
	})
	if err != nil {
		return err
	}
	if _, err := r.run(ctx, bin, "run", "--detach", "--name", name, QualifiedRef(committed)); err != nil {
		return err
	}
	if _, err := r.run(ctx, bin, "exec", "--user", "root", name, "sh", "-c", bottle.ScratchScript); err != nil {
		if ex, _ := r.exited(ctx, bin, name); ex != nil {
			return &bottle.ExitedError{Name: name, Exited: *ex}
		}
		return fmt.Errorf("%s is running, but recreating /tmp and /var/tmp failed: %w", name, err)
	}
	return bottle.WatchStart(ctx, bottle.SettleOf(opts.Settle, r.Settle), name, func(ctx context.Context) (*bottle.Exited, error) {
		return r.exited(ctx, bin, name)
	})
}

// exited returns nil while the container runs, else its state and the
// last lines of its output (container logs -n; container 1.2.2 reports
// no exit code).
func (r *Runtime) exited(ctx context.Context, bin, name string) (*bottle.Exited, error) {
	l, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	st := "deleted"
	if l != nil {
		if l.state() == "running" {
			return nil, nil
		}
		st = l.state()
	}
	ex := &bottle.Exited{Code: -1, State: st}
	out, err := r.run(ctx, bin, "logs", "-n", strconv.Itoa(bottle.LogLines), name)
	if err != nil {
		ex.Output = "(container logs: " + err.Error() + ")"
	} else {
		ex.Output = string(out)
	}
	return ex, nil
}
