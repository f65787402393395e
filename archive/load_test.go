package archive_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// golden reads a golden archive into a fresh store and returns its one
// image's manifest and config.
func golden(t *testing.T, name string) (*oci.Store, v1.Descriptor, *v1.Manifest, []byte) {
	t.Helper()
	ctx := context.Background()
	s, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := archive.Read(ctx, s, f, archive.ReadOptions{})
	if err != nil || len(c.Images) != 1 {
		t.Fatalf("reading %s: %v", name, err)
	}
	mb, err := s.ReadBlob(ctx, c.Images[0].Manifest.Digest, oci.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	cb, err := s.ReadBlob(ctx, m.Config.Digest, oci.MaxConfigSize)
	if err != nil {
		t.Fatal(err)
	}
	return s, c.Images[0].Manifest, &m, cb
}

// dockerImage describes the stored image for WriteDocker, each layer
// as stored or decompressed.
func dockerImage(t *testing.T, s *oci.Store, m *v1.Manifest, cb []byte, tag string, uncompressed bool) archive.DockerImage {
	t.Helper()
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		t.Fatal(err)
	}
	img := archive.DockerImage{Config: cb, ConfigDigest: m.Config.Digest, RepoTags: []string{tag}}
	for i, l := range m.Layers {
		dl := archive.DockerLayer{DiffID: cfg.RootFS.DiffIDs[i], Blob: l, Uncompressed: uncompressed, Size: l.Size}
		if uncompressed {
			if dl.Size, err = archive.UncompressedSize(context.Background(), s, l, dl.DiffID); err != nil {
				t.Fatal(err)
			}
		}
		img.Layers = append(img.Layers, dl)
	}
	return img
}

// TestWriteDockerLoads streams WriteDocker's archive into docker load,
// with gzip layers as stored and decompressed, and again leaving out
// the layers the daemon has (Skip): the daemon's image ID is the
// config's digest each time.
func TestWriteDockerLoads(t *testing.T) {
	needDocker(t)
	s, _, m, cb := golden(t, "docker-save.tar")
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	for _, tc := range []struct {
		name         string
		uncompressed bool
		skip         int
	}{{"stored", false, 0}, {"uncompressed", true, 0}, {"skip", false, len(m.Layers)}} {
		parent := t // images stay until the end: "skip" needs the layers loaded before
		t.Run(tc.name, func(t *testing.T) {
			tag := "archive-writedocker-" + tc.name + "-" + hex.EncodeToString(suffix) + ":latest"
			img := dockerImage(t, s, m, cb, tag, tc.uncompressed)
			img.Skip = tc.skip
			pr, pw := io.Pipe()
			go func() { pw.CloseWithError(archive.WriteDocker(context.Background(), pw, s, img)) }()
			cmd := exec.Command("docker", "load")
			cmd.Stdin = pr
			out, err := cmd.CombinedOutput()
			pr.Close()
			if err != nil {
				t.Fatalf("docker load: %v\n%s", err, out)
			}
			parent.Cleanup(func() { _ = exec.Command("docker", "rmi", tag).Run() })
			id, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", tag).Output()
			if err != nil {
				t.Fatalf("docker image inspect %s: %v (load said %s)", tag, err, out)
			}
			if got := strings.TrimSpace(string(id)); got != m.Config.Digest.String() {
				t.Fatalf("loaded as %s, want %s", got, m.Config.Digest)
			}
		})
	}
}

// TestWriteDockerChecks: a layer whose declared size or content is
// wrong fails the write instead of sending a bad stream.
func TestWriteDockerChecks(t *testing.T) {
	s, _, m, cb := golden(t, "docker-save.tar")
	img := dockerImage(t, s, m, cb, "x:latest", true)
	img.Layers[0].Size++
	if err := archive.WriteDocker(context.Background(), io.Discard, s, img); err == nil || !strings.Contains(err.Error(), "declares") {
		t.Errorf("a wrong uncompressed size: %v", err)
	}
	img = dockerImage(t, s, m, cb, "x:latest", true)
	img.Layers[0].DiffID = m.Config.Digest
	if err := archive.WriteDocker(context.Background(), io.Discard, s, img); err == nil || !strings.Contains(err.Error(), "diffID") {
		t.Errorf("a wrong diffID: %v", err)
	}
}

// TestWriteImageReadsBack: WriteImage's OCI layout is an archive bb
// reads, naming the image as Apple's container image load wants.
func TestWriteImageReadsBack(t *testing.T) {
	ctx := context.Background()
	s, desc, _, _ := golden(t, "skopeo-oci.tar")
	img, err := s.Image(ctx, desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	name := "docker.io/library/bot-bottle-committed-wi:latest"
	if err := archive.WriteImage(ctx, &buf, img, name); err != nil {
		t.Fatal(err)
	}
	s2, err := oci.Open(filepath.Join(t.TempDir(), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := archive.Read(ctx, s2, bytes.NewReader(buf.Bytes()), archive.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Images) != 1 || c.Images[0].Manifest.Digest != desc.Digest || c.Images[0].Name != name || c.Images[0].Slug != "wi" {
		t.Fatalf("read back %+v", c.Images)
	}
	if c.Images[0].Annotations[oci.RefNameAnnotation] != "latest" {
		t.Errorf("ref.name %q", c.Images[0].Annotations[oci.RefNameAnnotation])
	}
}
