package container

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AppleNameAnnotation is the index.json annotation container image load
// reads an image's name from first.
const AppleNameAnnotation = oci.AppleNameAnnotation

// WriteArchive writes img as a minimal OCI image layout tar (oci-layout,
// index.json, blobs/sha256/...) for container image load. index.json
// names the image ref (a full reference: docker.io/library/NAME:TAG) in
// com.apple.containerization.image.name and io.containerd.image.name,
// and its tag in org.opencontainers.image.ref.name. Blobs are streamed
// from img and verified against their digests on the way; ref "" leaves
// the annotations out.
func WriteArchive(ctx context.Context, w io.Writer, img v1.Image, ref string) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	mdig, msize, err := v1.SHA256(bytes.NewReader(raw))
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
	desc := v1.Descriptor{MediaType: mt, Digest: mdig, Size: msize}
	if cf.OS != "" && cf.Architecture != "" {
		desc.Platform = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	}
	if ref != "" {
		tag := "latest"
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			tag = ref[i+1:]
		}
		desc.Annotations = map[string]string{
			oci.AppleNameAnnotation:      ref,
			oci.ContainerdNameAnnotation: ref,
			oci.RefNameAnnotation:        tag,
		}
	}
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{desc}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	if err := put("blobs/sha256/"+mdig.Hex, raw); err != nil {
		return err
	}
	cdig, _, err := v1.SHA256(bytes.NewReader(cfg))
	if err != nil {
		return err
	}
	if want, err := img.ConfigName(); err != nil || want != cdig {
		return fmt.Errorf("config blob digest %s does not match the manifest (%s, %v)", cdig, want, err)
	}
	if err := put("blobs/sha256/"+cdig.Hex, cfg); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	seen := map[v1.Hash]bool{cdig: true, mdig: true}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, err := l.Digest()
		if err != nil {
			return err
		}
		if seen[d] {
			continue
		}
		seen[d] = true
		n, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = copyBlob(tw, rc, d, n)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// copyBlob writes the blob d of size n from r, checking both.
func copyBlob(tw *tar.Writer, r io.Reader, d v1.Hash, n int64) error {
	if err := tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + d.Hex, Mode: 0o644, Size: n, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	h := sha256.New()
	got, err := io.CopyN(io.MultiWriter(tw, h), r, n)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w (read %d of %d bytes)", d, err, got, n)
	}
	if extra, _ := r.Read(make([]byte, 1)); extra > 0 {
		return fmt.Errorf("layer %s is larger than its descriptor says (%d bytes)", d, n)
	}
	if sum := (v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}); sum != d {
		return &oci.DigestMismatchError{WantDigest: d, GotDigest: sum, WantSize: n, GotSize: got}
	}
	return nil
}
