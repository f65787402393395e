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

// Runtime snapshots directories. A dir bottle's directory is the cwd of
// its metadata.json (bb commit --from-dir writes it).
type Runtime struct {
	Home state.Home
	// Tar is the GNU tar to run ("tar" when empty).
	Tar string
}

var _ bottle.Runtime = (*Runtime)(nil)

// Name implements bottle.Runtime.
func (r *Runtime) Name() string { return bottle.Dir }

// Register records dir as the directory of bottle slug.
func (r *Runtime) Register(slug, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("--from-dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--from-dir %s is not a directory", abs)
	}
	md, err := r.Home.ReadMetadata(slug)
	if err != nil {
		return err
	}
	if md != nil && md.Backend != bottle.Dir && md.Backend != "" {
		return fmt.Errorf("slug %s already belongs to a %s bottle: choose another --slug", slug, md.Backend)
	}
	if md != nil && md.Cwd == abs && md.Backend == bottle.Dir {
		return nil
	}
	return r.Home.WriteMetadata(slug, state.Metadata{Identity: slug, Cwd: abs, Backend: bottle.Dir})
}

func (r *Runtime) path(slug string) (string, error) {
	md, err := r.Home.ReadMetadata(slug)
	if err != nil {
		return "", err
	}
	if md == nil || md.Backend != bottle.Dir || md.Cwd == "" {
		return "", fmt.Errorf("%s: %w (use bb commit --from-dir PATH --slug %s)", slug, bottle.ErrNoBottle, slug)
	}
	return md.Cwd, nil
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
	p, err := r.path(slug)
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

// Install implements bottle.Runtime: the store is the dir backend's image
// store, so the committed reference is the manifest digest.
func (r *Runtime) Install(ctx context.Context, snap bottle.Snapshot) (string, error) {
	return snap.Manifest.Digest.String(), nil
}

// Has implements bottle.Runtime. The dir backend has no image store of
// its own: Resume always reads the store.
func (r *Runtime) Has(ctx context.Context, committed string) (bool, error) {
	return false, nil
}

// Boot implements bottle.Runtime: extract the slug's current snapshot
// into opts.Dir (default <home>/state/<slug>/rootfs).
func (r *Runtime) Boot(ctx context.Context, snap bottle.Snapshot, committed string, opts bottle.ResumeOptions) error {
	if snap.Manifest.Digest == (v1.Hash{}) {
		return fmt.Errorf("no snapshot of %s in the store", snap.Slug)
	}
	dst := opts.Dir
	if dst == "" {
		dst = filepath.Join(r.Home.StateDir(snap.Slug), "rootfs")
	}
	if ents, err := os.ReadDir(dst); err == nil && len(ents) > 0 {
		if !opts.Replace {
			return fmt.Errorf("%s is not empty: %w (pass --replace to overwrite it)", dst, bottle.ErrRunning)
		}
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	img, err := snap.Store.Image(ctx, snap.Manifest.Digest)
	if err != nil {
		return err
	}
	tmp := dst + ".bb-extract"
	_ = os.RemoveAll(tmp)
	if err := rootfs.ExtractImage(ctx, img, tmp, rootfs.Options{NoChown: os.Geteuid() != 0}); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		p := filepath.Join(tmp, d)
		if err := os.MkdirAll(p, 0o1777); err != nil {
			return err
		}
		_ = os.Chmod(p, 0o1777|os.ModeSticky)
	}
	_ = os.Remove(dst)
	return os.Rename(tmp, dst)
}
