package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
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
	fe, ok := rd.blobs[d.Digest]
	if !ok {
		return invalid("%s names blob %s, which the archive does not contain", where, d.Digest)
	}
	if d.Size != fe.size {
		return invalid("%s declares %d bytes for blob %s, but the archive's blob has %d bytes", where, d.Size, d.Digest, fe.size)
	}
	return nil
}

// readManifest reads and parses the manifest d names, once per digest.
func (rd *reader) readManifest(where string, d v1.Descriptor) (*v1.Manifest, error) {
	m, ok := rd.manifests[d.Digest]
	if !ok {
		if d.Size > oci.MaxManifestSize {
			return nil, invalid("%s: manifest %s is %d bytes; bb reads at most %d", where, d.Digest, d.Size, oci.MaxManifestSize)
		}
		b, err := rd.s.ReadBlob(rd.ctx, d.Digest, oci.MaxManifestSize)
		if err != nil {
			return nil, err
		}
		m, err = parseManifest(b)
		if err != nil {
			return nil, invalid("%s: %v", where, err)
		}
		rd.manifests[d.Digest] = m
	}
	if m.MediaType != "" && m.MediaType != d.MediaType {
		return nil, invalid("%s: the descriptor says %s, the manifest says it is %s", where, d.MediaType, m.MediaType)
	}
	return m, nil
}

// readConfig reads and parses the image config d names, once per digest.
func (rd *reader) readConfig(where string, d v1.Hash, size int64) (*v1.ConfigFile, error) {
	if cfg, ok := rd.configs[d]; ok {
		return cfg, nil
	}
	if size > oci.MaxConfigSize {
		return nil, invalid("%s: config is %d bytes; bb reads at most %d", where, size, oci.MaxConfigSize)
	}
	cb, err := rd.s.ReadBlob(rd.ctx, d, oci.MaxConfigSize)
	if err != nil {
		return nil, err
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return nil, invalid("%s: config %s: %v", where, d, err)
	}
	rd.configs[d] = cfg
	return cfg, nil
}

// checkLayer checks that the archive's file fe, layer i of an image
// whose config is cfg, is a layer of media type mt whose uncompressed
// content matches its diff_id: the diffID was computed while the file
// streamed in, so it does not matter whether the config came first.
func checkLayer(where string, mt types.MediaType, fe *fileEntry, cfg *v1.ConfigFile, i int) error {
	if err := layer.CheckDiffID(mt, fe.comp, fe.diffID, fe.diffErr, cfg.RootFS.DiffIDs[i]); err != nil {
		return invalid("%s (blob %s) does not match its config: %v", where, fe.digest, err)
	}
	return nil
}

// checkImage checks an image manifest's config and layers: each layer's
// media type, size and diffID.
func (rd *reader) checkImage(where string, m *v1.Manifest) error {
	if !m.Config.MediaType.IsConfig() {
		return invalid("%s: config has media type %q, not an image config", where, m.Config.MediaType)
	}
	if err := rd.present(where+" config", m.Config); err != nil {
		return err
	}
	if len(m.Layers) > MaxLayers {
		return invalid("%s has %d layers; bb reads at most %d (MaxLayers)", where, len(m.Layers), MaxLayers)
	}
	cfg, err := rd.readConfig(where, m.Config.Digest, m.Config.Size)
	if err != nil {
		return err
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
		if err := checkLayer(lw, l.MediaType, rd.blobs[l.Digest], cfg, i); err != nil {
			return err
		}
	}
	return nil
}

// imageWalk is the state of reading index.json and the indexes it nests.
type imageWalk struct {
	imgs []FoundImage
	mans map[v1.Hash]*v1.Manifest
	// meta are the bottle metadata artifacts, each once.
	meta     []artifact
	metaSeen map[v1.Hash]bool
	// walked are the nested indexes already read.
	walked map[v1.Hash]bool
	// skipped are other tools' artifacts.
	skipped map[v1.Hash]bool
}

type artifact struct {
	where string
	m     *v1.Manifest
}

// ociImages reads index.json: its images (nested indexes allowed down to
// MaxIndexDepth) and the bottle metadata artifacts that describe them.
// Each distinct manifest, config and index is read and checked once,
// however often the archive names it.
func (rd *reader) ociImages() ([]FoundImage, map[v1.Hash]*v1.Manifest, error) {
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
	w := &imageWalk{mans: map[v1.Hash]*v1.Manifest{}, metaSeen: map[v1.Hash]bool{}, walked: map[v1.Hash]bool{}, skipped: map[v1.Hash]bool{}}
	if err := rd.walkIndex(w, "index.json", &idx, 0, nil); err != nil {
		return nil, nil, err
	}
	imgs := w.imgs
	for _, a := range w.meta {
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
	return imgs, w.mans, nil
}

// walkIndex reads the entries of idx, an index at nesting depth depth
// (index.json is 0). named is the index.json entry that leads to it (nil
// for index.json itself): its annotations name the images below.
func (rd *reader) walkIndex(w *imageWalk, where string, idx *v1.IndexManifest, depth int, named *v1.Descriptor) error {
	if len(idx.Manifests) > MaxIndexEntries {
		return invalid("%s has %d entries; bb reads at most %d per index (MaxIndexEntries)", where, len(idx.Manifests), MaxIndexEntries)
	}
	for i, d := range idx.Manifests {
		if err := rd.ctx.Err(); err != nil {
			return err
		}
		ew := fmt.Sprintf("%s entry %d", where, i)
		if depth == 0 {
			ew = fmt.Sprintf("index.json entry %d", i)
		}
		top := named
		if top == nil {
			top = &idx.Manifests[i]
		}
		if err := rd.present(ew, d); err != nil {
			return err
		}
		switch {
		case d.MediaType.IsImage():
			if err := rd.addImage(w, ew, d, top); err != nil {
				return err
			}
		case d.MediaType.IsIndex():
			if depth+1 > MaxIndexDepth {
				return invalid("%s: index %s is nested %d levels deep; bb reads at most %d (MaxIndexDepth)", ew, d.Digest, depth+1, MaxIndexDepth)
			}
			if w.walked[d.Digest] {
				continue
			}
			w.walked[d.Digest] = true
			if d.Size > oci.MaxManifestSize {
				return invalid("%s: index %s is %d bytes; bb reads at most %d", ew, d.Digest, d.Size, oci.MaxManifestSize)
			}
			b, err := rd.s.ReadBlob(rd.ctx, d.Digest, oci.MaxManifestSize)
			if err != nil {
				return err
			}
			var sub v1.IndexManifest
			if err := json.Unmarshal(b, &sub); err != nil {
				return invalid("%s: index %s: %v", ew, d.Digest, err)
			}
			if err := rd.walkIndex(w, fmt.Sprintf("%s (index %s)", ew, d.Digest), &sub, depth+1, top); err != nil {
				return err
			}
		case depth > 0:
			return invalid("%s has media type %q: bb imports image manifests, and indexes of them", ew, d.MediaType)
		default:
			return invalid("%s has media type %q, not an image manifest or index", ew, d.MediaType)
		}
	}
	return nil
}

// addImage reads the manifest d, found at where through the index.json
// entry named: an image, a bottle metadata artifact or another tool's
// artifact. Each digest is looked at once.
func (rd *reader) addImage(w *imageWalk, where string, d v1.Descriptor, named *v1.Descriptor) error {
	if w.mans[d.Digest] != nil || w.metaSeen[d.Digest] || w.skipped[d.Digest] {
		return nil
	}
	m, err := rd.readManifest(where, d)
	if err != nil {
		return err
	}
	if isMetadataArtifact(m) {
		w.metaSeen[d.Digest] = true
		w.meta = append(w.meta, artifact{where, m})
		return nil
	}
	if m.ArtifactType != "" {
		w.skipped[d.Digest] = true
		return nil // another tool's artifact (a signature, an SBOM): not ours to import
	}
	if err := rd.checkImage(where, m); err != nil {
		return err
	}
	if len(w.mans) >= MaxImages {
		return invalid("%s: the archive holds more than %d images (MaxImages)", where, MaxImages)
	}
	w.mans[d.Digest] = m
	w.imgs = append(w.imgs, found(v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, named.Annotations, m))
	return nil
}

// metadata checks a bottle metadata artifact and returns metadata.json
// and the digest of the manifest it describes.
func (rd *reader) metadata(where string, m *v1.Manifest) ([]byte, v1.Hash, error) {
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
func found(d v1.Descriptor, ann map[string]string, m *v1.Manifest) FoundImage {
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
func (rd *reader) legacyRefs(i int, e DockerManifest) (*fileEntry, []*fileEntry, error) {
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

func (rd *reader) parseLegacy() ([]DockerManifest, error) {
	var entries []DockerManifest
	if err := json.Unmarshal(rd.legacy, &entries); err != nil {
		return nil, invalid("manifest.json: %v", err)
	}
	if len(entries) > MaxIndexEntries {
		return nil, invalid("manifest.json has %d entries; bb reads at most %d (MaxIndexEntries)", len(entries), MaxIndexEntries)
	}
	for i, e := range entries {
		if len(e.Layers) > MaxLayers {
			return nil, invalid("manifest.json entry %d has %d layers; bb reads at most %d (MaxLayers)", i, len(e.Layers), MaxLayers)
		}
	}
	return entries, nil
}

// checkLegacy makes sure manifest.json describes images of index.json,
// so docker load and bb import of the same archive agree.
func (rd *reader) checkLegacy(imgs []FoundImage, mans map[v1.Hash]*v1.Manifest) error {
	entries, err := rd.parseLegacy()
	if err != nil {
		return err
	}
	// The images by config, so each entry costs one lookup.
	byConfig := map[v1.Hash][]*v1.Manifest{}
	for _, f := range imgs {
		m := mans[f.Manifest.Digest]
		byConfig[m.Config.Digest] = append(byConfig[m.Config.Digest], m)
	}
	for i, e := range entries {
		cfg, layers, err := rd.legacyRefs(i, e)
		if err != nil {
			return err
		}
		match := slices.ContainsFunc(byConfig[cfg.digest], func(m *v1.Manifest) bool {
			if len(m.Layers) != len(layers) {
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
// into OCI manifests in the store. Each layer's diffID was computed while
// it streamed in; it must match the config's.
func (rd *reader) dockerImages() ([]FoundImage, error) {
	entries, err := rd.parseLegacy()
	if err != nil {
		return nil, err
	}
	var imgs []FoundImage
	seen := map[v1.Hash]bool{}
	for i, e := range entries {
		where := fmt.Sprintf("manifest.json entry %d", i)
		cfgFile, layers, err := rd.legacyRefs(i, e)
		if err != nil {
			return nil, err
		}
		cfg, err := rd.readConfig(where, cfgFile.digest, cfgFile.size)
		if err != nil {
			return nil, err
		}
		if len(cfg.RootFS.DiffIDs) != len(layers) {
			return nil, invalid("%s lists %d layers, its config %d diff_ids", where, len(layers), len(cfg.RootFS.DiffIDs))
		}
		m := v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.OCIManifestSchema1,
			Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: cfgFile.digest, Size: cfgFile.size},
			Layers:        []v1.Descriptor{},
		}
		for j, l := range layers {
			mt := layerType(l.head)
			if err := checkLayer(fmt.Sprintf("%s layer %d (%q)", where, j, e.Layers[j]), mt, l, cfg, j); err != nil {
				return nil, err
			}
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: mt, Digest: l.digest, Size: l.size})
		}
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		h, _, _ := v1.SHA256(bytes.NewReader(mb))
		if seen[h] {
			continue // the same image listed again
		}
		seen[h] = true
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
