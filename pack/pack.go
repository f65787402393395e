package pack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/bot-bottle/bb/internal/iox"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Server is a running registry that serves bb's store.
type Server interface {
	// Ref returns the reference under which the registry serves the
	// store's tag repo as repo:tag, e.g. "localhost:PORT/repo:tag".
	Ref(repo, tag string) string
	// Close stops the registry.
	Close() error
}

// ServeFunc starts a registry on 127.0.0.1 serving s.
type ServeFunc func(ctx context.Context, s *oci.Store) (Server, error)

// Options tune Pack.
type Options struct {
	// Serve starts the embedded registry. Required.
	Serve ServeFunc
	// Binary is the smolvm executable ("smolvm", found on PATH, when empty).
	Binary string
	// Output receives smolvm's progress output; nil discards it.
	Output io.Writer
	Logger *slog.Logger
	// Layer tunes the compression of the flattened layer made for an
	// image of several layers.
	Layer layer.Options
	// Tee, if set, receives the uncompressed tar of the layer Pack makes
	// when it flattens an image of several layers (nothing for an image
	// of one layer). When such a Pack returns without error, Tee has
	// received the whole tar.
	Tee io.Writer
}

// Error is a failed smolvm pack create, with what smolvm said.
type Error struct {
	Ref    string
	Err    error
	Stderr string
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = "<no output>"
	}
	return fmt.Sprintf("smolvm pack create --image %s failed: %v: %s", e.Ref, e.Err, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrLayers is returned for images of several layers that cannot be
// flattened for smolvm.
var ErrLayers = errors.New("smolvm needs a single-layer image")

// Pack serves manifest (an image in s) on 127.0.0.1, runs smolvm pack
// create against it and writes the launcher at out and the artifact at
// out+".smolmachine". It returns the artifact's absolute path. On error,
// whatever was at out and out.smolmachine before stays.
func Pack(ctx context.Context, s *oci.Store, manifest v1.Descriptor, slug, out string, opts Options) (string, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Serve == nil {
		return "", errors.New("pack: no embedded registry configured (Options.Serve is nil)")
	}
	bin := opts.Binary
	if bin == "" {
		bin = "smolvm"
	}
	img, err := s.Image(ctx, manifest.Digest)
	if err != nil {
		return "", err
	}
	m, err := img.Manifest()
	if err != nil {
		return "", fmt.Errorf("reading manifest %s: %w", manifest.Digest, err)
	}
	if len(m.Layers) != 1 {
		// smolvm merges layers with cp -a and never applies whiteouts:
		// hand it one layer made from the chain.
		log.Info("flattening the snapshot's layers for smolvm", "layers", len(m.Layers))
		fl, err := FlattenTee(ctx, s, manifest.Digest, opts.Layer, opts.Tee)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrLayers, err)
		}
		log.Info("flattened", "copied_bytes", fl.Copied, "recompressed_bytes", fl.Recompressed)
		defer func() { _ = s.Discard(context.WithoutCancel(ctx), fl.NewBlobs) }()
		manifest = fl.Manifest
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", err
	}
	srv, err := opts.Serve(ctx, s)
	if err != nil {
		return "", fmt.Errorf("starting the embedded registry for smolvm pack: %w", err)
	}
	defer srv.Close()
	ref, err := servedRef(ctx, srv, slug, manifest.Digest)
	if err != nil {
		return "", err
	}
	tmp := abs + ".bb-pack"
	cleanup := func() {
		_ = os.Remove(tmp)
		_ = os.Remove(tmp + ".smolmachine")
	}
	cleanup()
	log.Info("smolvm pack create", "image", ref, "output", abs)
	cmd := exec.CommandContext(ctx, bin, "pack", "create", "--image", ref, "-o", tmp)
	stderr := iox.NewTail(16 << 10)
	stdout := iox.NewTail(4 << 10)
	cmd.Stderr = stderr
	cmd.Stdout = stdout
	if opts.Output != nil {
		cmd.Stdout = io.MultiWriter(stdout, opts.Output)
	}
	if err := cmd.Run(); err != nil {
		cleanup()
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("running %s: %w (is smolvm installed and on the PATH bb runs with?)", bin, err)
		}
		msg := stderr.String()
		if msg == "" {
			msg = stdout.String()
		}
		return "", &Error{Ref: ref, Err: err, Stderr: msg}
	}
	if fi, err := os.Stat(tmp + ".smolmachine"); err != nil || !fi.Mode().IsRegular() {
		cleanup()
		return "", &Error{Ref: ref, Err: fmt.Errorf("no artifact at %s.smolmachine", tmp), Stderr: stderr.String()}
	}
	if err := os.Rename(tmp+".smolmachine", abs+".smolmachine"); err != nil {
		cleanup()
		return "", err
	}
	if err := os.Rename(tmp, abs); err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	return abs + ".smolmachine", nil
}

// servedRef returns the reference smolvm should pull: the registry's
// repo:latest when it serves exactly this manifest, else the same
// repository by digest (a registry that serves the store's current tag
// still has the old snapshot there while a commit is being made).
func servedRef(ctx context.Context, srv Server, slug string, want v1.Hash) (string, error) {
	tagRef := srv.Ref(slug, "latest")
	t, err := name.NewTag(tagRef)
	if err != nil {
		return "", fmt.Errorf("embedded registry gave an invalid reference %q: %w", tagRef, err)
	}
	if d, err := headManifest(ctx, t.Context(), t.TagStr()); err == nil && d == want {
		return tagRef, nil
	}
	dref := t.Context().Digest(want.String())
	d, err := headManifest(ctx, t.Context(), want.String())
	if err != nil {
		return "", fmt.Errorf("the embedded registry serves snapshot %s neither as %s nor as %s: %w", want, tagRef, dref, err)
	}
	if d != want {
		return "", fmt.Errorf("the embedded registry served %s for %s", d, dref)
	}
	return dref.String(), nil
}

// headManifest asks the registry (plain HTTP: it listens on the loopback)
// which manifest repo:ref is.
func headManifest(ctx context.Context, repo name.Repository, ref string) (v1.Hash, error) {
	u := (&url.URL{Scheme: "http", Host: repo.RegistryStr(), Path: "/v2/" + repo.RepositoryStr() + "/manifests/" + ref}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u, nil)
	if err != nil {
		return v1.Hash{}, err
	}
	req.Header.Set("Accept", strings.Join([]string{string(types.OCIManifestSchema1), string(types.DockerManifestSchema2), string(types.OCIImageIndex), string(types.DockerManifestList)}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return v1.Hash{}, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v1.Hash{}, fmt.Errorf("%s %s: %s", req.Method, u, resp.Status)
	}
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" {
		return v1.NewHash(d)
	}
	// No digest header: hash the manifest.
	req.Method = http.MethodGet
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		return v1.Hash{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return v1.Hash{}, fmt.Errorf("%s %s: %s", req.Method, u, resp.Status)
	}
	h, _, err := v1.SHA256(io.LimitReader(resp.Body, oci.MaxManifestSize))
	return h, err
}
