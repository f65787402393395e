package archive

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
)

// DockerImage is one image to write as a docker archive in docker save's
// layout (manifest.json, <config hex>.json, <diffID hex>/layer.tar), the
// form the Docker daemon's load reads as a stream (WriteDocker).
type DockerImage struct {
	// Config is the image's config blob, ConfigDigest its digest.
	Config       []byte
	ConfigDigest v1.Hash
	// RepoTags are the names the loader tags the image with
	// (bot-bottle-committed-<slug>:latest).
	RepoTags []string
	// Layers are the image's layers, in order.
	Layers []DockerLayer
	// Skip leaves out the files of the first Skip layers, which
	// manifest.json still lists: the daemon has them already and finds
	// them by their chain of diffIDs.
	Skip int
}

// DockerLayer is one layer of a DockerImage.
type DockerLayer struct {
	// DiffID is the layer's uncompressed digest; its file is
	// <hex>/layer.tar.
	DiffID v1.Hash
	// Blob is the layer in the store.
	Blob v1.Descriptor
	// Uncompressed sends the layer decompressed, checked against DiffID
	// on the way; Size is then its uncompressed size, which must be known
	// before the first byte (see UncompressedSize). Otherwise the blob
	// goes as stored, checked against its digest (the daemon
	// decompresses a gzip layer.tar itself and checks its diffID).
	Uncompressed bool
	Size         int64
}

// DockerLayerFile is the file docker save names a layer by.
func DockerLayerFile(diffID v1.Hash) string { return diffID.Hex + "/layer.tar" }

// WriteDocker writes img to w as a docker archive, as one stream:
// manifest.json and the config first, then the layers from img.Skip on.
// A layer listed twice is written once. Nothing is written to disk, so
// w may be the body of the daemon's load request.
func WriteDocker(ctx context.Context, w io.Writer, s *oci.Store, img DockerImage) error {
	aw := NewWriter(ctx, w, nil)
	aw.Verify = true
	cfgName := img.ConfigDigest.Hex + ".json"
	names := make([]string, len(img.Layers))
	for i, l := range img.Layers {
		names[i] = DockerLayerFile(l.DiffID)
	}
	if err := aw.JSON(ManifestFile, []DockerManifest{{Config: cfgName, RepoTags: img.RepoTags, Layers: names}}); err != nil {
		return err
	}
	if err := aw.File(cfgName, img.Config); err != nil {
		return err
	}
	for i := img.Skip; i < len(img.Layers); i++ {
		l := img.Layers[i]
		if !l.Uncompressed {
			if err := aw.Blob(s, names[i], l.Blob); err != nil {
				return err
			}
			continue
		}
		err := aw.Body(names[i], l.Size, func(w io.Writer) error {
			_, err := Uncompress(ctx, s, l.Blob, l.DiffID, w)
			return err
		})
		if err != nil {
			return err
		}
	}
	return aw.Close()
}

// UncompressedSize is the size of a stored layer's uncompressed tar,
// for DockerLayer.Size: as the store recorded it when it wrote the
// layer, else by decompressing it once (checked against diffID).
func UncompressedSize(ctx context.Context, s *oci.Store, desc v1.Descriptor, diffID v1.Hash) (int64, error) {
	if n, ok := s.TarSize(diffID, desc.Digest); ok {
		return n, nil
	}
	return Uncompress(ctx, s, desc, diffID, io.Discard)
}

// Uncompress writes the stored layer desc decompressed (gzip, zstd or
// none, as its media type says) into w, checks that it hashes to
// diffID, and returns its uncompressed size.
func Uncompress(ctx context.Context, s *oci.Store, desc v1.Descriptor, diffID v1.Hash, w io.Writer) (int64, error) {
	comp, ok := layer.CompressionOf(desc.MediaType)
	if desc.MediaType == types.DockerForeignLayer {
		comp, ok = layer.Gzip, true
	}
	if !ok {
		return 0, fmt.Errorf("layer %s: unsupported media type %q", desc.Digest, desc.MediaType)
	}
	f, err := s.Blob(ctx, desc.Digest)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var rd io.Reader = f
	switch comp {
	case layer.Gzip:
		zr, err := pgzip.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		rd = zr
	case layer.Zstd:
		zr, err := zstd.NewReader(f)
		if err != nil {
			return 0, fmt.Errorf("layer %s: %w", desc.Digest, err)
		}
		defer zr.Close()
		rd = zr
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), iox.ContextReader(ctx, rd))
	if err != nil {
		return n, fmt.Errorf("layer %s: %w", desc.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return n, fmt.Errorf("layer %s decompresses to %s, not its diffID %s: the store is damaged", desc.Digest, got, diffID)
	}
	return n, nil
}

// WriteImage writes img to w as a minimal OCI image layout (oci-layout,
// index.json, blobs/sha256/...), the form Apple's container image load
// reads. index.json names the image name (a full reference:
// docker.io/library/NAME:TAG) in com.apple.containerization.image.name
// and io.containerd.image.name, and its tag in
// org.opencontainers.image.ref.name, as Write does for a one-image
// archive; name "" leaves the annotations out. Blobs are streamed from
// img and checked against their digests on the way.
func WriteImage(ctx context.Context, w io.Writer, img v1.Image, name string) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	mdig, msize, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	cdig, _, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	if want, err := img.ConfigName(); err != nil || want != cdig {
		return fmt.Errorf("config blob digest %s does not match the manifest (%s, %v)", cdig, want, err)
	}
	desc := indexEntry(v1.Descriptor{MediaType: mt, Digest: mdig, Size: msize}, cf, name)
	aw := NewWriter(ctx, w, nil)
	if err := aw.Layout(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}}); err != nil {
		return err
	}
	if err := aw.BlobDirs(); err != nil {
		return err
	}
	if err := aw.File(BlobsDir+mdig.Hex, raw); err != nil {
		return err
	}
	if err := aw.File(BlobsDir+cdig.Hex, cfg); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		if err := writeLayer(aw, l); err != nil {
			return err
		}
	}
	return aw.Close()
}

// indexEntry is the index.json entry of a one-image layout: the
// manifest d with the config's platform and, if name is set, the names.
func indexEntry(d v1.Descriptor, cf *v1.ConfigFile, name string) v1.Descriptor {
	if cf.OS != "" && cf.Architecture != "" {
		d.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion}
	}
	if name != "" {
		d.Annotations = map[string]string{
			oci.AppleNameAnnotation:      name,
			oci.ContainerdNameAnnotation: name,
			oci.RefNameAnnotation:        refName(name, 1),
		}
	}
	return d
}

// writeLayer streams one layer of a v1.Image as its blob.
func writeLayer(aw *Writer, l v1.Layer) error {
	d, err := l.Digest()
	if err != nil {
		return err
	}
	n, err := l.Size()
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := aw.Stream(BlobsDir+d.Hex, n, rc, d); err != nil {
		return fmt.Errorf("layer %s: %w", d, err)
	}
	return nil
}
