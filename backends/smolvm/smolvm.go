package smolvm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bot-bottle/bb/backends/clitool"
	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultBinary is the name of the smolvm CLI.
const DefaultBinary = "smolvm"

// Methods of streaming a VM's root filesystem.
const (
	// MethodExec streams tar's stdout through smolvm machine exec -i.
	MethodExec = "exec"
	// MethodCp writes the tar to a file in the guest and copies it out
	// with smolvm machine cp.
	MethodCp = "cp"
)

// GuestTarDir is where MethodCp writes the tar in the guest: on disk
// (unlike a tmpfs /tmp) and left out of every snapshot.
const GuestTarDir = "/var/tmp"

// Runtime drives the smolvm CLI.
type Runtime struct {
	Home state.Home
	// Binary is the smolvm CLI: a name looked up on PATH or a path
	// ("smolvm" when empty).
	Binary string
	// Pack configures pack create (its Serve starts the embedded
	// registry); Pack.Binary defaults to Binary.
	Pack pack.Options
	// TempDir holds the tar copied out of the guest by MethodCp
	// (<home>/tmp when empty).
	TempDir string
	Logger  *slog.Logger
	// Settle is how long Boot watches a started machine (0:
	// bottle.DefaultSettle; negative: no check).
	Settle time.Duration
}

var _ bottle.Runtime = (*Runtime)(nil)

// Name implements bottle.Runtime.
func (r *Runtime) Name() string { return bottle.Smolmachines }

// CheckName implements bottle.NameChecker.
func (r *Runtime) CheckName(slug string) error { return bottle.CheckSmolvmName(slug) }

func (r *Runtime) log() *slog.Logger { return clitool.Logger(r.Logger) }

// ErrNoCLI is returned when the smolvm CLI cannot be found.
var ErrNoCLI = errors.New("the smolvm CLI is not installed or not on PATH")

// ErrExecUnavailable is returned when smolvm refuses to run a command in
// a VM, as it does while an interactive session holds it.
var ErrExecUnavailable = errors.New("smolvm exec is not available")

// tool is the smolvm CLI.
var tool = clitool.Tool{
	Backend: bottle.Smolmachines, Name: DefaultBinary, ErrMissing: ErrNoCLI,
	Install:   "Install smolvm (https://github.com/smol-machines/smolvm)",
	LoginPATH: "Homebrew's PATH set only in ~/.zshrc or ~/.zprofile", Env: "BB_SMOLVM_BIN",
}

func (r *Runtime) bin() (string, error) { return tool.Lookup(r.Binary) }

func (r *Runtime) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	return tool.Run(ctx, bin, args...)
}

// machine is one entry of smolvm machine ls --json.
type machine struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Image      *string  `json:"image"`
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
}

func (r *Runtime) machines(ctx context.Context, bin string) ([]machine, error) {
	return clitool.List[machine](ctx, tool, bin, "machine", "ls", "--json")
}

func (r *Runtime) find(ctx context.Context, bin, name string) (*machine, error) {
	ms, err := r.machines(ctx, bin)
	if err != nil {
		return nil, err
	}
	return clitool.Find(ms, name, func(m *machine) string { return m.Name }), nil
}

func info(slug string, m *machine) *bottle.Info {
	i := &bottle.Info{Slug: slug, Name: m.Name, Backend: bottle.Smolmachines, Running: m.State == "running"}
	if m.Image != nil {
		i.Image = *m.Image
	}
	return i
}

// List implements bottle.Runtime.
func (r *Runtime) List(ctx context.Context) ([]bottle.Info, error) {
	bin, err := r.bin()
	if err != nil {
		return nil, err
	}
	ms, err := r.machines(ctx, bin)
	if err != nil {
		return nil, err
	}
	var out []bottle.Info
	for i := range ms {
		slug, ok := bottle.SlugOf(ms[i].Name)
		if !ok {
			continue
		}
		out = append(out, *info(slug, &ms[i]))
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
	m, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%s: %w in smolvm (smolvm machine ls has no such machine)", name, bottle.ErrNoBottle)
	}
	return info(slug, m), nil
}

// exec runs argv in the VM with captured output (smolvm caps it at
// 11 MiB, plenty for short commands).
func (r *Runtime) exec(ctx context.Context, bin, name string, argv ...string) ([]byte, error) {
	return r.run(ctx, bin, append([]string{"machine", "exec", "--name", name, "--"}, argv...)...)
}

// Prepare implements bottle.Runtime.
func (r *Runtime) Prepare(ctx context.Context, slug string, opts bottle.PrepareOptions) (*bottle.Prepared, error) {
	bin, err := r.bin()
	if err != nil {
		return nil, err
	}
	if opts.Pause {
		return nil, errors.New("smolmachines cannot pause a VM while its filesystem is read (--pause is docker only)")
	}
	name := bottle.Name(slug)
	m, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%s: %w", name, bottle.ErrNoBottle)
	}
	if _, err := r.exec(ctx, bin, name, "true"); err != nil {
		return nil, fmt.Errorf("%w for %s (%v): concurrent exec is not available while an interactive session "+
			"(smolvm machine exec -it, machine shell, the agent's terminal) holds the VM; end that session and run bb commit again",
			ErrExecUnavailable, name, err)
	}
	if out, err := r.exec(ctx, bin, name, "id", "-u"); err == nil {
		if uid := strings.TrimSpace(string(out)); uid != "0" {
			return nil, fmt.Errorf("smolvm machine exec runs as uid %s in %s (its image's USER), so tar cannot read the whole filesystem: bb needs an image without USER (the launcher switches users itself)", uid, name)
		}
	}
	if err := tool.CheckTar(ctx, bin, name, "machine", "exec", "--name", name, "--"); err != nil {
		return nil, err
	}
	method := opts.Method
	switch method {
	case "":
		method = MethodExec
		if _, err := r.run(ctx, bin, "machine", "exec", "--name", name, "-i", "--", "true"); err != nil {
			r.log().Warn("smolvm machine exec -i does not work here; copying the tar out of the guest instead", "machine", name, "err", err)
			method = MethodCp
		}
	case MethodExec, MethodCp:
	default:
		return nil, fmt.Errorf("smolmachines: unknown --method %q (exec or cp)", opts.Method)
	}
	base := snapshot.Base{Config: r.baseConfig(ctx, bin, name, m, opts)}
	if m.Image != nil {
		base.Ref = *m.Image
	}
	src := &Source{Binary: bin, Name: name, Method: method, OneFS: !opts.IncludeMounts, TempDir: r.tempDir()}
	if method == MethodCp {
		if err := src.checkCap(ctx); err != nil {
			return nil, err
		}
	}
	return &bottle.Prepared{Source: src, Base: base, CreatedBy: "bb commit (smolvm " + method + " tar)"}, nil
}

func (r *Runtime) tempDir() string { return clitool.TempDir(r.Home, r.TempDir) }

// sessionEnv are variables of an exec's environment that belong to the
// session, not to the image.
var sessionEnv = map[string]bool{"HOSTNAME": true, "HOME": true, "PWD": true, "OLDPWD": true, "SHLVL": true, "_": true, "TERM": true}

// baseConfig is the snapshot's config: machine ls --json reports the
// machine's entrypoint and cmd (smolvm 1.9.3 src/cli/vm_common.rs
// machine_status_json) but no image config. The base is the slug's
// previous snapshot when there is one (the machine was resumed from
// it), else only the PATH of an exec's environment; with KeepEnv the
// whole environment is kept (a machine's environment holds what
// machine create -e and its secrets set).
func (r *Runtime) baseConfig(ctx context.Context, bin, name string, m *machine, opts bottle.PrepareOptions) *v1.ConfigFile {
	keepEnv := opts.KeepEnv
	out, err := r.exec(ctx, bin, name, "env")
	if err != nil {
		r.log().Warn("reading the VM's environment; the snapshot gets a default PATH", "machine", name, "err", err)
	}
	var env []string
	for _, line := range strings.Split(string(out), "\n") {
		k, _, ok := strings.Cut(line, "=")
		if ok && k != "" && !sessionEnv[k] && !strings.ContainsAny(k, " \t") {
			env = append(env, line)
		}
	}
	cf := &v1.ConfigFile{Config: v1.Config{Env: bottle.PathOnly(env)}}
	if opts.Previous != nil {
		cf = opts.Previous.DeepCopy()
		cf.History, cf.RootFS = nil, v1.RootFS{}
	}
	if len(cf.Config.Env) == 0 {
		cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	p := bottle.Process{Env: env}
	if len(m.Entrypoint) > 0 || len(m.Cmd) > 0 {
		p.Entrypoint, p.Cmd = append([]string{}, m.Entrypoint...), append([]string{}, m.Cmd...)
	}
	return bottle.ApplyProcess(cf, p, keepEnv && len(env) > 0)
}

// Source streams a VM's root filesystem.
type Source struct {
	Binary, Name string
	Method       string
	OneFS        bool
	// TempDir holds the copied-out tar (MethodCp).
	TempDir string
}

// Stream implements snapshot.Source.
func (s *Source) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	args := tarcmd.Args("/", req.Excludes, s.OneFS)
	if s.Method != MethodCp {
		argv := append([]string{"machine", "exec", "--name", s.Name, "-i", "--"}, tarcmd.Wrap(args)...)
		return tarcmd.StartWrapped(ctx, exec.CommandContext(ctx, s.Binary, argv...), "smolvm machine exec -i tar in "+s.Name)
	}
	return s.copyOut(ctx, args)
}

// copyOut runs tar into a file in the guest, copies it to the host with
// smolvm machine cp, removes it from the guest, and streams the host copy
// (which is deleted when the stream is closed).
func (s *Source) copyOut(ctx context.Context, args []string) (io.ReadCloser, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	guest := GuestTarDir + "/.bb-commit-" + hex.EncodeToString(b) + ".tar"
	for i, a := range args {
		if a == "--file=-" {
			args[i] = "--file=" + guest
		}
	}
	what := "smolvm machine exec tar in " + s.Name
	defer func() {
		rm := exec.CommandContext(context.WithoutCancel(ctx), s.Binary, "machine", "exec", "--name", s.Name, "--", "rm", "-f", guest)
		_ = rm.Run()
	}()
	var warnings []string
	cmd := exec.CommandContext(ctx, s.Binary, append([]string{"machine", "exec", "--name", s.Name, "--"}, tarcmd.Wrap(args)...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	w, err := tarcmd.Judge(what, cmd.Run(), stderr.String())
	if err != nil {
		return nil, err
	}
	if w != "" {
		warnings = append(warnings, w)
	}
	if err := os.MkdirAll(s.TempDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.TempDir, "smolvm-commit-*.tar")
	if err != nil {
		return nil, err
	}
	host := f.Name()
	f.Close()
	if _, err := tarcmd.Run(ctx, exec.CommandContext(ctx, s.Binary, "machine", "cp", s.Name+":"+guest, host), "smolvm machine cp"); err != nil {
		os.Remove(host)
		return nil, err
	}
	f, err = os.Open(host)
	os.Remove(host) // the open file stays readable
	if err != nil {
		return nil, err
	}
	return &fileStream{File: f, warnings: warnings}, nil
}

type fileStream struct {
	*os.File
	warnings []string
}

func (f *fileStream) Warnings() []string { return f.warnings }

// ArtifactBase is where the launcher of a slug's pack goes; the artifact
// is ArtifactBase + ".smolmachine" (bottle.SmolmachineArtifact).
func ArtifactBase(home state.Home, slug string) string {
	return strings.TrimSuffix(bottle.SmolmachineArtifact(home, slug), ".smolmachine")
}

// Load implements bottle.Runtime: pack.Pack into the slug's state
// directory; committed-image records the artifact's absolute path.
func (r *Runtime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	bin, err := r.bin()
	if err != nil {
		return "", err
	}
	opts := r.Pack
	if opts.Binary == "" {
		opts.Binary = bin
	}
	if opts.Logger == nil {
		opts.Logger = r.Logger
	}
	// What described the previous pack goes first: a failure below must
	// not leave it next to a new artifact.
	old := bottle.SmolmachineArtifact(r.Home, snap.Slug)
	_ = os.Remove(old + ManifestSuffix)
	_ = os.Remove(old + RestoreSuffix)
	// The restore tar is made now, while the commit reads the snapshot
	// anyway (from the flattened tar as Pack makes it, for a chain), so
	// that a resume need not read the whole layer again.
	tee := startRestoreTee(ctx, snap.Store, snap.Manifest.Digest, old+RestoreSuffix, &opts)
	art, err := pack.Pack(ctx, snap.Store, snap.Manifest, snap.Slug, ArtifactBase(r.Home, snap.Slug), opts)
	var rerr error
	if tee != nil {
		rerr = tee.finish(art+RestoreSuffix, err)
	}
	if err != nil {
		return "", err
	}
	if tee == nil {
		_, rerr = buildRestore(ctx, snap.Store, snap.Manifest.Digest, art+RestoreSuffix)
	}
	if rerr != nil {
		r.log().Warn("preparing the restore of what smolvm's pack loses; the resume will prepare it", "err", rerr)
		_ = os.Remove(art + RestoreSuffix)
	}
	// Which snapshot the artifact holds, for the restore after a boot
	// (the store's current snapshot may be a later one, committed with
	// --no-load).
	tmp := art + ManifestSuffix + ".tmp"
	if err := os.WriteFile(tmp, []byte(snap.Manifest.Digest.String()+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, art+ManifestSuffix); err != nil {
		return "", err
	}
	return art, nil
}

// RestoreSuffix names the restore tar (see WriteRestore) kept next to an
// artifact.
const RestoreSuffix = ".bb-restore.tar"

// buildRestore writes the restore tar of snapshot manifest to path
// (private, atomically).
func buildRestore(ctx context.Context, s *oci.Store, manifest v1.Hash, path string) (RestoreStats, error) {
	lr, err := snapshotLayer(ctx, s, manifest)
	if err != nil {
		return RestoreStats{}, err
	}
	defer lr.Close()
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return RestoreStats{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	st, err := WriteRestore(ctx, lr, bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return st, err
}

// ManifestSuffix names the file next to an artifact that records the
// digest of the snapshot it was packed from.
const ManifestSuffix = ".bb-manifest"

// packedManifest returns the snapshot an artifact was packed from.
func packedManifest(artifact string) (v1.Hash, error) {
	b, err := os.ReadFile(artifact + ManifestSuffix)
	if err != nil {
		return v1.Hash{}, err
	}
	return v1.NewHash(strings.TrimSpace(string(b)))
}

// Has implements bottle.Runtime: the artifact file exists.
func (r *Runtime) Has(ctx context.Context, committed string) (bool, error) {
	fi, err := os.Stat(committed)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Mode().IsRegular(), nil
}

// ImageID implements bottle.ImageIdentifier: the identity of the
// artifact file committed names (device, inode, size and modification
// time; "" when there is none). An artifact another tool packed at bb's
// path since bb's last load, without rewriting committed-image, differs
// in it, and a resume boots that artifact instead of packing over it.
func (r *Runtime) ImageID(ctx context.Context, committed string) (string, error) {
	fi, err := os.Stat(committed)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	id := fmt.Sprintf("%d:%d", fi.Size(), fi.ModTime().UnixNano())
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = fmt.Sprintf("%d:%d:%s", st.Dev, st.Ino, id)
	}
	return id, nil
}

var _ bottle.ImageIdentifier = (*Runtime)(nil)

// Boot implements bottle.Runtime: machine create --from the artifact,
// machine start, and /tmp and /var/tmp recreated.
func (r *Runtime) Boot(ctx context.Context, snap bottle.Snapshot, committed string, opts bottle.ResumeOptions) error {
	bin, err := r.bin()
	if err != nil {
		return err
	}
	name := bottle.Name(snap.Slug)
	m, err := r.find(ctx, bin, name)
	if err != nil {
		return err
	}
	running := m != nil && m.State == "running"
	err = clitool.Replace(name, m != nil, running, opts.Replace, func() error {
		if running {
			if _, err := r.run(ctx, bin, "machine", "stop", "--name", name); err != nil {
				return err
			}
		}
		_, err := r.run(ctx, bin, "machine", "delete", "--name", name, "--force")
		return err
	})
	if err != nil {
		return err
	}
	if _, err := r.run(ctx, bin, "machine", "create", "--name", name, "--from", committed); err != nil {
		return err
	}
	if _, err := r.run(ctx, bin, "machine", "start", "--name", name); err != nil {
		return err
	}
	// Right after start the exec channel may not be ready yet (libkrun):
	// retry a few times.
	var ferr error
	for i := 0; i < 4; i++ {
		if _, ferr = r.exec(ctx, bin, name, "sh", "-c", bottle.ScratchScript); ferr == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(i+1) * 250 * time.Millisecond):
		}
	}
	if ferr != nil {
		if ex, _ := r.exited(ctx, bin, name); ex != nil {
			return &bottle.ExitedError{Name: name, Exited: *ex}
		}
		return fmt.Errorf("%s is running, but recreating /tmp and /var/tmp failed: %w", name, ferr)
	}
	packed, perr := packedManifest(committed)
	switch {
	case perr != nil:
		r.log().Warn("bb does not know which snapshot this pack holds (packed by an older bb?): directory modes and xattrs that smolvm's pack lost are not restored; bb commit again to fix", "machine", name, "err", perr)
	case snap.Store == nil:
		r.log().Warn("no store: directory modes and xattrs that smolvm's pack lost are not restored", "machine", name)
	default:
		if _, err := snap.Store.Image(ctx, packed); err != nil {
			r.log().Warn("the snapshot this pack holds is no longer in bb's store: directory modes and xattrs that smolvm's pack lost are not restored", "machine", name, "snapshot", packed, "err", err)
			break
		}
		if err := r.restore(ctx, bin, name, bottle.Snapshot{Slug: snap.Slug, Store: snap.Store, Manifest: v1.Descriptor{Digest: packed}}, committed+RestoreSuffix); err != nil {
			return fmt.Errorf("%s is running, but restoring what smolvm's pack lost (directory modes, xattrs) failed: %w", name, err)
		}
	}
	return bottle.WatchStart(ctx, bottle.SettleOf(opts.Settle, r.Settle), name, func(ctx context.Context) (*bottle.Exited, error) {
		return r.exited(ctx, bin, name)
	})
}

// exited returns nil while machine ls says the machine runs, else its
// state (smolvm 1.9.3 has no exit code or log of a machine's workload
// to show).
func (r *Runtime) exited(ctx context.Context, bin, name string) (*bottle.Exited, error) {
	m, err := r.find(ctx, bin, name)
	if err != nil {
		return nil, err
	}
	if m != nil && m.State == "running" {
		return nil, nil
	}
	st := "deleted"
	if m != nil {
		st = m.State
	}
	return &bottle.Exited{Code: -1, State: st}, nil
}

// Restore puts back in a machine created from snap's pack what packing
// lost (see WriteRestore): the restore tar is built from the snapshot in
// bb's store into a private temporary file, then extracted by the guest's
// GNU tar through machine exec -i (binary-safe, uncapped).
func (r *Runtime) Restore(ctx context.Context, bin, name string, snap bottle.Snapshot) error {
	return r.restore(ctx, bin, name, snap, "")
}

// restore is Restore with the restore tar already made at cached (when
// it exists).
func (r *Runtime) restore(ctx context.Context, bin, name string, snap bottle.Snapshot, cached string) error {
	path := cached
	if _, err := os.Stat(cached); cached == "" || err != nil {
		if err := os.MkdirAll(r.tempDir(), 0o700); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(r.tempDir(), "smolvm-restore-*.tar")
		if err != nil {
			return err
		}
		tmp.Close()
		defer os.Remove(tmp.Name())
		if _, err := buildRestore(ctx, snap.Store, snap.Manifest.Digest, tmp.Name()); err != nil {
			return err
		}
		path = tmp.Name()
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() <= 1024 { // an empty tar: its end-of-archive blocks
		return nil
	}
	st := RestoreStats{Bytes: fi.Size()}
	r.log().Info("restoring directory modes and xattrs that smolvm's pack lost", "machine", name, "tar_bytes", st.Bytes)
	cmd := exec.CommandContext(ctx, bin, append([]string{"machine", "exec", "--name", name, "-i", "--"}, tarcmd.Wrap(RestoreArgs)...)...)
	cmd.Stdin = f
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	w, err := tarcmd.Judge("smolvm machine exec -i tar --extract in "+name, cmd.Run(), stderr.String())
	if err != nil {
		return err
	}
	if w != "" {
		return errors.New(w)
	}
	return nil
}
