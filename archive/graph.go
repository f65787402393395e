package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// graph checks what the archive's JSON files name against the blobs
// that arrived, and returns its images.
func (rd *reader) graph() (*Contents, error) {
	if rd.index == nil && rd.legacy == nil {
		return nil, invalid("the archive has neither index.json nor manifest.json: it is not an image archive")
	}
	if rd.layout != nil {
		var l struct {
			Version string `json:"imageLayoutVersion"`
		}
		if err := json.Unmarshal(rd.layout, &l); err != nil {
			return nil, invalid("oci-layout is not valid JSON: %v", err)
		}
		if !strings.HasPrefix(l.Version, "1.") {
			return nil, invalid("oci-layout has imageLayoutVersion %q; bb reads version 1 layouts", l.Version)
		}
	}
	c := &Contents{}
	if rd.index != nil {
		if rd.layout == nil {
			return nil, invalid("the archive has index.json but no oci-layout file")
		}
		imgs, mans, err := rd.ociImages()
		if err != nil {
			return nil, err
		}
		if rd.legacy != nil {
			if err := rd.checkLegacy(imgs, mans); err != nil {
				return nil, err
			}
		}
		c.Images, c.Format = imgs, "oci"
	} else {
		imgs, err := rd.dockerImages()
		if err != nil {
			return nil, err
		}
		c.Images, c.Format = imgs, "docker"
	}
	if len(c.Images) == 0 {
		return nil, invalid("the archive holds no image")
	}
	return c, nil
}

// present checks that the archive holds the blob d names, with d's size.
func (rd *reader) present(where string, d v1.Descriptor) error {
	if err := oci.ValidHash(d.Digest); err != nil {
		return invalid("%s: %v", where, err)
	}
	n, ok := rd.blobs[d.Digest]
	if !ok {
		return invalid("%s names blob %s, which the archive does not contain", where, d.Digest)
	}
	if d.Size != n {
		return invalid("%s declares %d bytes for blob %s, but the archive's blob has %d bytes", where, d.Size, d.Digest, n)
	}
	return nil
}

// readManifest reads and parses the manifest d names.
func (rd *reader) readManifest(where string, d v1.Descriptor) (*manifest, error) {
	if d.Size > oci.MaxManifestSize {
		return nil, invalid("%s: manifest %s is %d bytes; bb reads at most %d", where, d.Digest, d.Size, oci.MaxManifestSize)
	}
	b, err := rd.s.ReadBlob(rd.ctx, d.Digest, oci.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	m, err := parseManifest(b)
	if err != nil {
		return nil, invalid("%s: %v", where, err)
	}
	if m.MediaType != "" && m.MediaType != d.MediaType {
		return nil, invalid("%s: the descriptor says %s, the manifest says it is %s", where, d.MediaType, m.MediaType)
	}
	return m, nil
}

// checkImage checks an image manifest's config and layers.
func (rd *reader) checkImage(where string, m *manifest) error {
	if !isConfig(m.Config.MediaType) {
		return invalid("%s: config has media type %q, not an image config", where, m.Config.MediaType)
	}
	if err := rd.present(where+" config", m.Config); err != nil {
		return err
	}
	if m.Config.Size > oci.MaxConfigSize {
		return invalid("%s: config is %d bytes; bb reads at most %d", where, m.Config.Size, oci.MaxConfigSize)
	}
	cb, err := rd.s.ReadBlob(rd.ctx, m.Config.Digest, oci.MaxConfigSize)
	if err != nil {
		return err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return invalid("%s: config %s: %v", where, m.Config.Digest, err)
	}
	if cfg.RootFS.Type != "layers" {
		return invalid("%s: config %s has rootfs type %q, not \"layers\"", where, m.Config.Digest, cfg.RootFS.Type)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return invalid("%s: the manifest has %d layers, its config lists %d diff_ids", where, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	for i, l := range m.Layers {
		lw := fmt.Sprintf("%s layer %d", where, i)
		if !isLayer(l.MediaType) {
			return invalid("%s has media type %q, not a layer bb can read", lw, l.MediaType)
		}
		if err := rd.present(lw, l); err != nil {
			return err
		}
		if isUncompressedLayer(l.MediaType) && l.Digest != cfg.RootFS.DiffIDs[i] {
			return invalid("%s is uncompressed but its digest %s is not its diff_id %s", lw, l.Digest, cfg.RootFS.DiffIDs[i])
		}
	}
	return nil
}

// ociImages reads index.json: its images (one level of nested index
// allowed) and the bottle metadata artifacts that describe them.
func (rd *reader) ociImages() ([]FoundImage, map[v1.Hash]*manifest, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(rd.index, &idx); err != nil {
		return nil, nil, invalid("index.json: %v", err)
	}
	if idx.SchemaVersion != 2 {
		return nil, nil, invalid("index.json has schemaVersion %d, not 2", idx.SchemaVersion)
	}
	if idx.MediaType != "" && idx.MediaType != types.OCIImageIndex {
		return nil, nil, invalid("index.json has media type %q, not %s", idx.MediaType, types.OCIImageIndex)
	}
	var imgs []FoundImage
	mans := map[v1.Hash]*manifest{}
	type artifact struct {
		where string
		m     *manifest
	}
	var meta []artifact
	addImage := func(where string, d, named v1.Descriptor) error {
		m, err := rd.readManifest(where, d)
		if err != nil {
			return err
		}
		if isMetadataArtifact(m) {
			meta = append(meta, artifact{where, m})
			return nil
		}
		if m.ArtifactType != "" {
			return nil // another tool's artifact (a signature, an SBOM): not ours to import
		}
		if err := rd.checkImage(where, m); err != nil {
			return err
		}
		if _, dup := mans[d.Digest]; dup {
			return nil
		}
		mans[d.Digest] = m
		imgs = append(imgs, found(v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, named.Annotations, m))
		return nil
	}
	for i, d := range idx.Manifests {
		where := fmt.Sprintf("index.json entry %d", i)
		if err := rd.present(where, d); err != nil {
			return nil, nil, err
		}
		switch {
		case isImageManifest(d.MediaType):
			if err := addImage(where, d, d); err != nil {
				return nil, nil, err
			}
		case isIndex(d.MediaType):
			if d.Size > oci.MaxManifestSize {
				return nil, nil, invalid("%s: index %s is %d bytes; bb reads at most %d", where, d.Digest, d.Size, oci.MaxManifestSize)
			}
			b, err := rd.s.ReadBlob(rd.ctx, d.Digest, oci.MaxManifestSize)
			if err != nil {
				return nil, nil, err
			}
			var sub v1.IndexManifest
			if err := json.Unmarshal(b, &sub); err != nil {
				return nil, nil, invalid("%s: index %s: %v", where, d.Digest, err)
			}
			for j, cd := range sub.Manifests {
				cw := fmt.Sprintf("%s (index %s) entry %d", where, d.Digest, j)
				if !isImageManifest(cd.MediaType) {
					return nil, nil, invalid("%s has media type %q: bb imports image manifests, and indexes of them", cw, cd.MediaType)
				}
				if err := rd.present(cw, cd); err != nil {
					return nil, nil, err
				}
				if err := addImage(cw, cd, d); err != nil {
					return nil, nil, err
				}
			}
		default:
			return nil, nil, invalid("%s has media type %q, not an image manifest or index", where, d.MediaType)
		}
	}
	for _, a := range meta {
		raw, subject, err := rd.metadata(a.where, a.m)
		if err != nil {
			return nil, nil, err
		}
		k := slices.IndexFunc(imgs, func(f FoundImage) bool { return f.Manifest.Digest == subject })
		if k < 0 {
			return nil, nil, invalid("%s: bottle metadata for %s, which the archive does not hold", a.where, subject)
		}
		if imgs[k].Metadata != nil && !bytes.Equal(imgs[k].Metadata, raw) {
			return nil, nil, invalid("%s: a second, different bottle metadata for %s", a.where, subject)
		}
		imgs[k].Metadata = raw
	}
	return imgs, mans, nil
}

// metadata checks a bottle metadata artifact and returns metadata.json
// and the digest of the manifest it describes.
func (rd *reader) metadata(where string, m *manifest) ([]byte, v1.Hash, error) {
	if m.Subject == nil {
		return nil, v1.Hash{}, invalid("%s: bottle metadata artifact without a subject", where)
	}
	if err := rd.present(where+" config", m.Config); err != nil {
		return nil, v1.Hash{}, err
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != snapshot.MetadataMediaType {
		return nil, v1.Hash{}, invalid("%s: a bottle metadata artifact has one %s layer", where, snapshot.MetadataMediaType)
	}
	l := m.Layers[0]
	if err := rd.present(where+" metadata", l); err != nil {
		return nil, v1.Hash{}, err
	}
	if l.Size > snapshot.MaxMetadataSize {
		return nil, v1.Hash{}, invalid("%s: bottle metadata is %d bytes; bb reads at most %d", where, l.Size, snapshot.MaxMetadataSize)
	}
	raw, err := rd.s.ReadBlob(rd.ctx, l.Digest, snapshot.MaxMetadataSize)
	if err != nil {
		return nil, v1.Hash{}, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, v1.Hash{}, invalid("%s: bottle metadata is not a JSON object: %v", where, err)
	}
	return raw, m.Subject.Digest, nil
}

// found describes an image from its index.json entry's annotations and
// its manifest.
func found(d v1.Descriptor, ann map[string]string, m *manifest) FoundImage {
	f := FoundImage{Manifest: d, Annotations: ann}
	for _, k := range []string{oci.ContainerdNameAnnotation, oci.AppleNameAnnotation} {
		if ann[k] != "" {
			f.Name = ann[k]
			break
		}
	}
	if f.Name == "" && strings.ContainsAny(ann[oci.RefNameAnnotation], "/:") {
		f.Name = ann[oci.RefNameAnnotation]
	}
	f.Slug = ann[oci.SlugAnnotation]
	if f.Slug == "" && m != nil {
		f.Slug = m.Annotations[oci.SlugAnnotation]
	}
	if f.Slug == "" {
		f.Slug = slugFromName(f.Name)
	}
	return f
}

// legacyRefs resolves a manifest.json entry's paths to archive files.
func (rd *reader) legacyRefs(i int, e legacyEntry) (*fileEntry, []*fileEntry, error) {
	where := fmt.Sprintf("manifest.json entry %d", i)
	file := func(what, p string) (*fileEntry, error) {
		name, err := cleanName(p)
		if err != nil {
			return nil, invalid("%s: %s path %q is absolute or escapes the archive", where, what, p)
		}
		fe, ok := rd.files[name]
		if !ok {
			return nil, invalid("%s names %s %q, which the archive does not contain", where, what, p)
		}
		return fe, nil
	}
	cfg, err := file("config", e.Config)
	if err != nil {
		return nil, nil, err
	}
	var layers []*fileEntry
	for j, p := range e.Layers {
		fe, err := file(fmt.Sprintf("layer %d", j), p)
		if err != nil {
			return nil, nil, err
		}
		layers = append(layers, fe)
	}
	return cfg, layers, nil
}

func (rd *reader) parseLegacy() ([]legacyEntry, error) {
	var entries []legacyEntry
	if err := json.Unmarshal(rd.legacy, &entries); err != nil {
		return nil, invalid("manifest.json: %v", err)
	}
	return entries, nil
}

// checkLegacy makes sure manifest.json describes images of index.json,
// so docker load and bb import of the same archive agree.
func (rd *reader) checkLegacy(imgs []FoundImage, mans map[v1.Hash]*manifest) error {
	entries, err := rd.parseLegacy()
	if err != nil {
		return err
	}
	for i, e := range entries {
		cfg, layers, err := rd.legacyRefs(i, e)
		if err != nil {
			return err
		}
		match := slices.ContainsFunc(imgs, func(f FoundImage) bool {
			m := mans[f.Manifest.Digest]
			if m.Config.Digest != cfg.digest || len(m.Layers) != len(layers) {
				return false
			}
			for j, l := range m.Layers {
				if l.Digest != layers[j].digest {
					return false
				}
			}
			return true
		})
		if !match {
			return invalid("manifest.json entry %d (config %s) matches no image of index.json: the archive's two descriptions disagree", i, cfg.digest)
		}
	}
	return nil
}

// dockerImages turns the entries of a docker archive's manifest.json
// into OCI manifests in the store.
func (rd *reader) dockerImages() ([]FoundImage, error) {
	entries, err := rd.parseLegacy()
	if err != nil {
		return nil, err
	}
	var imgs []FoundImage
	for i, e := range entries {
		where := fmt.Sprintf("manifest.json entry %d", i)
		cfgFile, layers, err := rd.legacyRefs(i, e)
		if err != nil {
			return nil, err
		}
		if cfgFile.size > oci.MaxConfigSize {
			return nil, invalid("%s: config is %d bytes; bb reads at most %d", where, cfgFile.size, oci.MaxConfigSize)
		}
		cb, err := rd.s.ReadBlob(rd.ctx, cfgFile.digest, oci.MaxConfigSize)
		if err != nil {
			return nil, err
		}
		cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
		if err != nil {
			return nil, invalid("%s: config %q: %v", where, e.Config, err)
		}
		if len(cfg.RootFS.DiffIDs) != len(layers) {
			return nil, invalid("%s lists %d layers, its config %d diff_ids", where, len(layers), len(cfg.RootFS.DiffIDs))
		}
		m := manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgFile.digest, Size: cfgFile.size},
			Layers:        []v1.Descriptor{},
		}
		for j, l := range layers {
			mt := layerType(l.head)
			if mt == types.OCIUncompressedLayer && l.digest != cfg.RootFS.DiffIDs[j] {
				return nil, invalid("%s layer %d (%q) does not match its diff_id %s", where, j, e.Layers[j], cfg.RootFS.DiffIDs[j])
			}
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Digest: l.digest, Size: l.size})
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		h, _, _ := v1.SHA256(bytes.NewReader(mb))
		_, statErr := rd.s.Stat(rd.ctx, h)
		d, err := rd.s.PutBytes(rd.ctx, types.OCIManifestSchema1, mb)
		if err != nil {
			return nil, err
		}
		if statErr != nil {
			rd.newBlobs = append(rd.newBlobs, d.Digest)
		}
		f := FoundImage{Manifest: d}
		if len(e.RepoTags) > 0 {
			f.Name = e.RepoTags[0]
			f.Slug = slugFromName(f.Name)
		}
		imgs = append(imgs, f)
	}
	return imgs, nil
}
