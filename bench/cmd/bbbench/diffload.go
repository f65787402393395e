package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
)

// diffLoadStep is the daemon's own floor for loading an incremental
// snapshot: docker load of an archive that holds only the snapshot's diff
// layer (the daemon has the base layers, as for bb's load). The archive
// is made once, untimed, from a bb commit --no-load of the bottle.
func (e *benchEnv) diffLoadStep(b *bottle, group string) *step {
	home := filepath.Join(e.cfg.Work, "home-diffload-"+b.Size)
	archive := filepath.Join(e.cfg.Work, "diffload-"+b.Size+".tar")
	tag := "bb-bench-diffload:" + b.Size
	s := &step{
		ID: "docker-load-diff/" + b.Size, Issue: 2, Group: group, Tool: "docker load", Daemon: true, Basis: b.TarBytes,
		Name: "docker load of an archive holding only the diff layer (the daemon's floor)",
		Cmd:  "docker load -i " + shQuote(archive),
		Skip: e.dockerBackend,
	}
	rmi := func(ctx context.Context) error { _, _ = quiet(ctx, "docker", "rmi", "-f", tag); return nil }
	s.before = func(ctx context.Context) error {
		_ = rmi(ctx)
		if fileSize(archive) > 0 {
			return nil
		}
		_ = os.RemoveAll(home)
		if _, err := measure(ctx, nil, e.bbArgv("--home", home, "commit", b.Slug, "--no-load", "--json")...); err != nil {
			return err
		}
		return writeDiffArchive(ctx, filepath.Join(home, "oci"), b.Slug, tag, archive)
	}
	s.run = func(ctx context.Context) (sample, error) {
		r, err := measure(ctx, nil, "docker", "load", "-q", "-i", archive)
		if err != nil {
			return sample{}, err
		}
		r.Out = fileSize(archive)
		return r.sample, nil
	}
	s.after = rmi
	e.onCleanup(func() { _ = rmi(context.Background()); _ = os.RemoveAll(home) })
	return s
}

// writeDiffArchive writes a docker-archive of the snapshot tagged slug in
// the store at root, holding its config and only its last layer,
// uncompressed, under the name ref.
func writeDiffArchive(ctx context.Context, root, slug, ref, out string) error {
	s, err := oci.Open(root)
	if err != nil {
		return err
	}
	desc, err := s.Resolve(ctx, slug)
	if err != nil {
		return err
	}
	mb, err := s.ReadBlob(ctx, desc.Digest, oci.MaxConfigSize)
	if err != nil {
		return err
	}
	man, err := v1.ParseManifest(bytes.NewReader(mb))
	if err != nil {
		return err
	}
	cb, err := s.ReadBlob(ctx, man.Config.Digest, oci.MaxConfigSize)
	if err != nil {
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return err
	}
	n := len(man.Layers)
	if n == 0 || len(cfg.RootFS.DiffIDs) != n {
		return fmt.Errorf("snapshot %s: %d layers, %d diffIDs", slug, n, len(cfg.RootFS.DiffIDs))
	}
	// The top layer, decompressed to a scratch file for its size.
	blob, err := s.Blob(ctx, man.Layers[n-1].Digest)
	if err != nil {
		return err
	}
	defer blob.Close()
	zr, err := pgzip.NewReader(blob)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "layer-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	size, err := io.Copy(tmp, zr)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	names := make([]string, n)
	for i, d := range cfg.RootFS.DiffIDs {
		names[i] = d.Hex + "/layer.tar"
	}
	cfgName := man.Config.Digest.Hex + ".json"
	mj, err := json.Marshal([]struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{cfgName, []string{ref}, names}})
	if err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	now := time.Unix(0, 0)
	for _, e := range []struct {
		name string
		b    []byte
	}{{"manifest.json", mj}, {cfgName, cb}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Size: int64(len(e.b)), Mode: 0o644, ModTime: now}); err != nil {
			return err
		}
		if _, err := tw.Write(e.b); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: names[n-1], Size: size, Mode: 0o644, ModTime: now}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, tmp); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}
