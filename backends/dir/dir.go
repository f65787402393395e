package dir

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DefaultPath is the PATH given to snapshots of a bare directory.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Runtime snapshots directories. A dir bottle's directory is what this
// host's user named: the directory of bb commit --from-dir, or the one bb
// resume extracted the bottle into. It is recorded in
// state/<slug>/dir-source, never taken from metadata.json (which may have
// come with an import or a pull from another host).
type Runtime struct {
	Home state.Home
	// Tar is the GNU tar to run ("tar" when empty).
	Tar string
}

var (
	_ bottle.Runtime        = (*Runtime)(nil)
	_ bottle.SourceRecorder = (*Runtime)(nil)
)

// Name implements bottle.Runtime.
func (r *Runtime) Name() string { return bottle.Dir }

// checkDir makes dir absolute and checks that it is a directory that
// slug may take.
func (r *Runtime) checkDir(slug, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("--from-dir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--from-dir %s is not a directory", abs)
	}
	md, err := r.Home.ReadMetadata(slug)
	if err != nil {
		return "", err
	}
	if md != nil && md.Backend != bottle.Dir && md.Backend != "" {
		return "", fmt.Errorf("slug %s already belongs to a %s bottle: choose another --slug", slug, md.Backend)
	}
	return abs, nil
}

// Register records dir as the directory of bottle slug right away (tests
// and tools; bb commit --from-dir records it only once the snapshot is
// stored, through PrepareOptions.Dir and RecordSource).
func (r *Runtime) Register(slug, dir string) error {
	abs, err := r.checkDir(slug, dir)
	if err != nil {
		return err
	}
	return r.RecordSource(slug, abs)
}

// RecordSource implements bottle.SourceRecorder: dir becomes the
// directory of dir bottle slug, and metadata.json names the dir backend.
func (r *Runtime) RecordSource(slug, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := r.Home.WriteDirSource(slug, abs); err != nil {
		return err
	}
	return r.Home.SetBackend(slug, bottle.Dir)
}

func (r *Runtime) path(slug string) (string, error) {
	p, err := r.Home.DirSource(slug)
	if err != nil || p != "" {
		return p, err
	}
	md, err := r.Home.ReadMetadata(slug)
	if err != nil {
		return "", err
	}
	if md != nil && md.Backend == bottle.Dir && md.Cwd != "" {
		return "", fmt.Errorf("%s: %w: metadata.json names %s, but bb snapshots only a directory this host's user named (metadata may come from another host): run bb commit --from-dir %s --slug %s",
			slug, bottle.ErrNoBottle, md.Cwd, md.Cwd, slug)
	}
	return "", fmt.Errorf("%s: %w (use bb commit --from-dir PATH --slug %s)", slug, bottle.ErrNoBottle, slug)
}

// List implements bottle.Runtime: the dir bottles recorded in state.
func (r *Runtime) List(ctx context.Context) ([]bottle.Info, error) {
	slugs, err := r.Home.Slugs()
	if err != nil {
		return nil, err
	}
	var out []bottle.Info
	for _, s := range slugs {
		if p, err := r.path(s); err == nil {
			_, statErr := os.Stat(p)
			out = append(out, bottle.Info{Slug: s, Name: p, Backend: bottle.Dir, Running: statErr == nil})
		}
	}
	return out, nil
}

// Inspect implements bottle.Runtime. A directory that exists is "running".
func (r *Runtime) Inspect(ctx context.Context, slug string) (*bottle.Info, error) {
	p, err := r.path(slug)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(p)
	return &bottle.Info{Slug: slug, Name: p, Backend: bottle.Dir, Running: statErr == nil}, nil
}

// Prepare implements bottle.Runtime.
func (r *Runtime) Prepare(ctx context.Context, slug string, opts bottle.PrepareOptions) (*bottle.Prepared, error) {
	var p string
	var err error
	if opts.Dir != "" {
		p, err = r.checkDir(slug, opts.Dir)
	} else {
		p, err = r.path(slug)
	}
	if err != nil {
		return nil, err
	}
	tar := r.Tar
	if tar == "" {
		tar = "tar"
	}
	if out, err := exec.CommandContext(ctx, tar, "--version").Output(); err != nil {
		return nil, fmt.Errorf("running %s --version: %w (bb needs GNU tar on the host)", tar, err)
	} else if err := tarcmd.CheckVersion(string(out)); err != nil {
		return nil, fmt.Errorf("host %s", strings.TrimPrefix(err.Error(), "the bottle's "))
	}
	return &bottle.Prepared{
		Source:    &Source{Dir: p, Tar: tar, OneFS: !opts.IncludeMounts},
		Base:      snapshot.Base{Config: &v1.ConfigFile{Config: v1.Config{Env: []string{DefaultPath}, Cmd: []string{"/bin/sh"}}}},
		CreatedBy: "bb commit --from-dir (host tar)",
	}, nil
}

// Source streams a directory through the host's GNU tar.
type Source struct {
	Dir   string
	Tar   string
	OneFS bool
}

// Stream implements snapshot.Source.
func (s *Source) Stream(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	args := tarcmd.Args(s.Dir, req.Excludes, s.OneFS)
	tar := s.Tar
	if tar == "" {
		tar = "tar"
	}
	cmd := exec.CommandContext(ctx, tar, args[1:]...)
	return tarcmd.Start(ctx, cmd, "tar of "+s.Dir, true)
}

// Load implements bottle.Runtime: the store is the dir backend's image
// store, so the committed reference is the manifest digest.
func (r *Runtime) Load(ctx context.Context, snap bottle.Snapshot) (string, error) {
	return snap.Manifest.Digest.String(), nil
}

// Has implements bottle.Runtime. The dir backend has no image store of
// its own: Resume always reads the store.
func (r *Runtime) Has(ctx context.Context, committed string) (bool, error) {
	return false, nil
}

// Boot implements bottle.Runtime: extract the slug's current snapshot
// into opts.Dir (default <home>/state/<slug>/rootfs), which becomes the
// bottle's directory. The tree keeps its own modes inside under a top
// directory of mode 0700; /tmp and /var/tmp are made real directories
// (root:root 1777 as root) inside it. Device nodes are created only with
// opts.Devices; skipped ones are reported through opts.Warn.
func (r *Runtime) Boot(ctx context.Context, snap bottle.Snapshot, committed string, opts bottle.ResumeOptions) error {
	if snap.Manifest.Digest == (v1.Hash{}) {
		return fmt.Errorf("no snapshot of %s in the store", snap.Slug)
	}
	dst := opts.Dir
	if dst == "" {
		dst = filepath.Join(r.Home.StateDir(snap.Slug), "rootfs")
	}
	dst, err := filepath.Abs(dst)
	if err != nil {
		return err
	}
	if err := r.checkTarget(dst, snap.Store.Root()); err != nil {
		return err
	}
	// Without --replace, only a missing path or an empty directory (not
	// a symlink to one, not a file) may be taken.
	if fi, err := os.Lstat(dst); err == nil && !opts.Replace {
		if !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory: %w (pass --replace to overwrite it)", dst, bottle.ErrRunning)
		}
		if ents, err := os.ReadDir(dst); err != nil || len(ents) > 0 {
			return fmt.Errorf("%s is not empty: %w (pass --replace to overwrite it)", dst, bottle.ErrRunning)
		}
	}
	img, err := snap.Store.Image(ctx, snap.Manifest.Digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".bb-extract"
	_ = os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	fail := func(err error) error {
		_ = os.RemoveAll(tmp)
		return err
	}
	ropts := rootfs.Options{NoChown: os.Geteuid() != 0, Devices: opts.Devices, Warn: opts.Warn}
	if err := rootfs.ExtractImage(ctx, img, tmp, ropts); err != nil {
		return fail(err)
	}
	if err := rootfs.Scratch(tmp, []string{"tmp", "var/tmp"}, ropts); err != nil {
		return fail(err)
	}
	if err := rootfs.Private(tmp); err != nil {
		return fail(err)
	}
	if opts.Replace {
		if err := os.RemoveAll(dst); err != nil {
			return fail(err)
		}
	} else {
		_ = os.Remove(dst) // empty
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fail(err)
	}
	return r.RecordSource(snap.Slug, dst)
}

// checkTarget refuses a resume target that holds bb's home or store or
// lies inside the store: extracting there (with --replace, after
// removing what is there) would destroy snapshots.
func (r *Runtime) checkTarget(dst, store string) error {
	resolve := func(p string) string {
		if p == "" {
			return ""
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if ev, err := filepath.EvalSymlinks(p); err == nil {
			p = ev
		}
		return p
	}
	d := resolve(dst)
	// The target itself may not exist yet: resolve its parent.
	if _, err := os.Lstat(dst); err != nil {
		d = filepath.Join(resolve(filepath.Dir(dst)), filepath.Base(dst))
	}
	within := func(p, dir string) bool {
		rel, err := filepath.Rel(dir, p)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
	}
	for _, own := range []string{resolve(r.Home.Dir), resolve(store)} {
		if own == "" {
			continue
		}
		if within(own, d) {
			return fmt.Errorf("refusing to resume into %s: it holds bb's %s; choose another --dir", dst, own)
		}
	}
	if s := resolve(store); s != "" && within(d, s) {
		return fmt.Errorf("refusing to resume into %s: it is inside bb's store %s; choose another --dir", dst, s)
	}
	return nil
}
