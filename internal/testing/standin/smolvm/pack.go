package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/klauspost/compress/zstd"
)

// artifactMagic starts the stand-in's .smolmachine files: this line, one
// line of JSON (artifactManifest), then a tar of the flattened root
// filesystem compressed with zstd at level 3, as smolvm compresses its
// assets (crates/smolvm-pack/src/assets.rs ZSTD_LEVEL, compress). (smolvm's
// own format is a different, binary one; bb treats the artifact as
// opaque.)
const artifactMagic = "SMOLMACHINE-STANDIN/2"

type artifactManifest struct {
	Image      string   `json:"image"`
	Digest     string   `json:"digest"`
	Platform   string   `json:"platform"`
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env"`
	Workdir    string   `json:"workdir"`
	User       string   `json:"user"`
}

func readArtifactHeader(r *bufio.Reader) (*artifactManifest, error) {
	line, err := r.ReadString('\n')
	if err != nil || strings.TrimSpace(line) != artifactMagic {
		return nil, errors.New("not a .smolmachine artifact (bad magic)")
	}
	js, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("truncated manifest: %v", err)
	}
	var m artifactManifest
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %v", err)
	}
	return &m, nil
}

// cmdPackCreate pulls --image REF from its registry (plain HTTP for
// localhost and 127.0.0.0/8, as smolvm's puller decides on its own),
// flattens its layers and writes the launcher at -o OUT and the artifact
// at OUT.smolmachine. It fails, with the registry's error on stderr, when
// the image cannot be pulled.
func (st *state) cmdPackCreate(ctx context.Context, args []string) error {
	f, err := parseFlags(args, []string{"--no-sign", "--single-file", "--gpu", "--rebase-from-image"},
		[]string{"--image", "-I", "-o", "--output", "--cpus", "--mem", "--oci-platform", "--entrypoint", "--staging-dir", "--from-vm", "-s", "--smolfile"}, false)
	if err != nil {
		return err
	}
	if f.value("--from-vm") != "" {
		return errors.New("the stand-in does not pack from a VM (--from-vm)")
	}
	ref, out := f.value("--image", "-I"), f.value("-o", "--output")
	if ref == "" {
		return errors.New("the following required arguments were not provided: --image <IMAGE>")
	}
	if out == "" {
		return errors.New("the following required arguments were not provided: --output <PATH>")
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return fmt.Errorf("invalid image reference '%s': %v", ref, err)
	}
	fmt.Println("Starting agent VM...")
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return fmt.Errorf("failed to pull image '%s': %v", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("failed to pull image '%s': %v", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("failed to pull image '%s': %v", ref, err)
	}
	dig, _ := img.Digest()
	var size int64
	for _, l := range layers {
		n, _ := l.Size()
		size += n
	}
	fmt.Printf("Image: %s (%d layers, %d bytes)\n", ref, len(layers), size)
	staging, err := os.MkdirTemp(filepath.Join(st.root, "tmp"), "pack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(staging)
	// Each layer is unpacked on its own as smolvm's guest does
	// (unpackLayer); one layer is the packed tree, several are merged
	// with cp -a (mergeLayers).
	var dirs []string
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return fmt.Errorf("failed to pull image '%s': layer %d: %v", ref, i, err)
		}
		d := filepath.Join(staging, fmt.Sprintf("layer-%d", i))
		err = unpackLayer(ctx, rc, d)
		rc.Close()
		if err != nil {
			return fmt.Errorf("failed to pull image '%s': layer %d: %v", ref, i, err)
		}
		dirs = append(dirs, d)
	}
	if len(dirs) == 0 {
		return fmt.Errorf("failed to pull image '%s': it has no layers", ref)
	}
	tree := dirs[0]
	if len(dirs) > 1 {
		fmt.Printf("Merging %d layers in VM (one-time cost)...\n", len(dirs))
		tree = filepath.Join(staging, "rootfs")
		if err := mergeLayers(ctx, dirs, tree); err != nil {
			return err
		}
	}
	var opts standin.TreeOptions
	if v := os.Getenv(EnvRemapOwner); v != "" {
		uid, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("%s=%q: not a uid", EnvRemapOwner, v)
		}
		opts.Owner = &uid
	}
	m := artifactManifest{
		Image: ref, Digest: dig.String(), Platform: "linux/" + cf.Architecture,
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd, Env: cf.Config.Env,
		Workdir: cf.Config.WorkingDir, User: cf.Config.User,
	}
	// The agent exports the layer as a tar to a staging file on the host
	// (src/cli/pack.rs export_layer_to_file; tar -cf in the guest,
	// crates/smolvm-agent/src/main.rs handle_streaming_export_layer), and
	// Packer::pack compresses the staging directory into the sidecar.
	staged := filepath.Join(staging, "layer.tar")
	if err := exportTree(ctx, staged, tree, opts); err != nil {
		return err
	}
	sidecar := out + ".smolmachine"
	if err := writeArtifact(sidecar, m, staged); err != nil {
		_ = os.Remove(sidecar)
		return err
	}
	launcher := fmt.Sprintf("#!/bin/sh\n# smolvm stand-in launcher for %s\necho 'stand-in launcher: boot with smolvm machine create --from %s' >&2\nexit 1\n", ref, sidecar)
	if err := os.WriteFile(out, []byte(launcher), 0o755); err != nil {
		return err
	}
	fmt.Printf("Packed: %s (+ %s)\n", out, filepath.Base(sidecar))
	return nil
}

// exportTree writes the tar of tree to file, as the agent's export does.
func exportTree(ctx context.Context, file, tree string, opts standin.TreeOptions) error {
	fh, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	err = standin.WriteTree(ctx, bw, tree, opts)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeArtifact writes the header and the staged tar compressed as
// smolvm's Packer::pack does (crates/smolvm-pack/src/packer.rs:105-135):
// one zstd stream at level 3 on one thread into a temporary file
// (crates/smolvm-pack/src/assets.rs:44-46 ZSTD_LEVEL, :677-711 compress;
// the zstd crate's Encoder::new compresses on the calling thread), copied
// into the sidecar, whose CRC-32 is then computed over the file.
func writeArtifact(file string, m artifactManifest, staged string) error {
	zfile := staged + ".zst"
	if err := compressFile(staged, zfile); err != nil {
		return err
	}
	defer os.Remove(zfile)
	zin, err := os.Open(zfile)
	if err != nil {
		return err
	}
	defer zin.Close()
	fh, err := os.Create(file)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	js, _ := json.Marshal(m)
	fmt.Fprintf(bw, "%s\n%s\n", artifactMagic, js)
	_, err = io.Copy(bw, zin)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// crc32_file_range over assets and manifest (packer.rs:131-135).
	fh, err = os.Open(file)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = io.Copy(crc32.NewIEEE(), fh)
	return err
}

func compressFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	zw, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	if err != nil {
		out.Close()
		return err
	}
	_, err = io.Copy(zw, in)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = bw.Flush()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
