package testimage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// HostImage is Image built with the host's GNU tar and gzip into files in
// tmp: a single gzip layer, Config, this host's architecture. It is much
// faster than Image under the race detector, which slows Go's compressor.
func HostImage(ctx context.Context, dir, tmp string) (v1.Image, error) {
	return HostImageConfig(ctx, dir, tmp, Config())
}

// HostImageConfig is HostImage with another image config.
func HostImageConfig(ctx context.Context, dir, tmp string, config v1.Config) (v1.Image, error) {
	layer := filepath.Join(tmp, "layer.tar")
	cmd := exec.CommandContext(ctx, "tar", "--create", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--file="+layer, "--directory="+dir, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("tar of %s: %w: %s", dir, err, out)
	}
	diffID, _, err := hashFile(layer)
	if err != nil {
		return nil, err
	}
	if out, err := exec.CommandContext(ctx, "gzip", "-1", "-n", "-f", layer).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("gzip %s: %w: %s", layer, err, out)
	}
	gz := layer + ".gz"
	digest, size, err := hashFile(gz)
	if err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux", Config: config,
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		History: []v1.History{{CreatedBy: "testimage"}},
	})
	if err != nil {
		return nil, err
	}
	cd, cs, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return nil, err
	}
	man, err := json.Marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cd, Size: cs},
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Digest: digest, Size: size}},
	})
	if err != nil {
		return nil, err
	}
	return partial.CompressedToImage(&hostImage{cfg: cfg, man: man, layer: &fileLayer{path: gz, digest: digest, size: size}})
}

func hashFile(p string) (v1.Hash, int64, error) {
	f, err := os.Open(p)
	if err != nil {
		return v1.Hash{}, 0, err
	}
	defer f.Close()
	return v1.SHA256(f)
}

type hostImage struct {
	cfg, man []byte
	layer    *fileLayer
}

func (i *hostImage) RawConfigFile() ([]byte, error)      { return i.cfg, nil }
func (i *hostImage) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (i *hostImage) RawManifest() ([]byte, error)        { return i.man, nil }
func (i *hostImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if h == i.layer.digest {
		return i.layer, nil
	}
	return nil, fmt.Errorf("no layer %s", h)
}

type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }
