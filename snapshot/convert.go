package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// A snapshot's layers can be sent in another compression than the one
// they are stored in (bb push and bb export --compression). The copy is
// an image of its own: same config (a layer's diffID does not depend on
// its compression), new layer descriptors, so a new manifest digest. It
// is kept in the store and recorded in index.json as an untagged entry
// attached to the snapshot, like the bottle's metadata:
//
//	artifactType            ConvertedArtifactType (marks the entry, not the manifest)
//	dev.bot-bottle.subject  the stored snapshot's manifest digest
//	dev.bot-bottle.compression  gzip or zstd
//	dev.bot-bottle.slug     the snapshot's slug
//
// so a second push or export reuses it, gc keeps its blobs while the
// snapshot is in the store, and it goes with the last tag of the snapshot
// (pruning, bb rm). It carries no tag: the slug's tags and history never
// name it.
const (
	// ConvertedArtifactType marks an index.json entry that is a
	// recompressed copy of the snapshot its subject annotation names.
	ConvertedArtifactType = "application/vnd.bot-bottle.converted.v1"
	// CompressionAnnotation says, on such an entry, which compression its
	// layers have.
	CompressionAnnotation = "dev.bot-bottle.compression"
)

// Conversion is the result of Convert.
type Conversion struct {
	// Manifest is the image to send: the stored snapshot itself when
	// none of its layers needed converting, else the converted copy.
	Manifest v1.Descriptor `json:"manifest"`
	// Source is the stored snapshot's manifest.
	Source v1.Descriptor `json:"source"`
	// Converted is true when Manifest is a converted copy.
	Converted bool `json:"converted"`
	// Recompressed counts the layers compressed now; Reused those whose
	// converted blob an earlier conversion had left in the store.
	Recompressed int `json:"recompressed"`
	Reused       int `json:"reused"`
}

// Convert returns the image manifest src (in s) with every gzip or zstd
// layer in compression to (layer.Gzip or layer.Zstd). Layers already in
// that compression, uncompressed and non-distributable layers are kept
// as they are. The converted copy is recorded as described above; an
// existing one is reused, and so are layers converted for other
// snapshots (a chain shares its lower layers). Each recompressed layer is
// checked against its digest and its config's diffID while it is read.
// A Docker schema 2 manifest converted to zstd becomes an OCI manifest
// (Docker's media types have no zstd layer).
func Convert(ctx context.Context, s *oci.Store, src v1.Descriptor, to layer.Compression, opts layer.Options) (*Conversion, error) {
	if to != layer.Gzip && to != layer.Zstd {
		return nil, fmt.Errorf("unknown layer compression %q: gzip or zstd", to)
	}
	mb, err := s.ReadBlob(ctx, src.Digest, oci.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	var m v1.Manifest
	if err := json.Unmarshal(mb, &raw); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", src.Digest, err)
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", src.Digest, err)
	}
	mt := m.MediaType
	if mt == "" {
		mt = src.MediaType
	}
	if mt != types.OCIManifestSchema1 && mt != types.DockerManifestSchema2 {
		return nil, fmt.Errorf("%s is a %s, not an image manifest", src.Digest, mt)
	}
	src = v1.Descriptor{MediaType: mt, Digest: src.Digest, Size: int64(len(mb))}
	conv := &Conversion{Manifest: src, Source: src}
	if !needsConversion(m.Layers, to) {
		return conv, nil
	}
	if d, ok := recordedConversion(ctx, s, src.Digest, to); ok {
		conv.Manifest, conv.Converted = d, true
		return conv, nil
	}
	cfg, err := s.Config(ctx, m.Config.Digest)
	if err != nil {
		return nil, fmt.Errorf("config of %s: %w", src.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("manifest %s has %d layers, its config %d diff_ids: the snapshot is damaged", src.Digest, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	known := convertedLayers(ctx, s, to)
	docker := mt == types.DockerManifestSchema2
	if docker && to == layer.Zstd {
		mt = types.OCIManifestSchema1
		m.Config.MediaType = types.OCIConfigJSON
	}
	for i, l := range m.Layers {
		c, ok := layer.CompressionOf(l.MediaType)
		if !ok || !convertible(l.MediaType) || c == to {
			continue
		}
		nmt := layerMediaType(to, mt)
		if k, ok := known[l.Digest]; ok {
			if _, ok := s.Reuse(k.Digest, k.Size); ok {
				m.Layers[i] = v1.Descriptor{MediaType: nmt, Digest: k.Digest, Size: k.Size, Annotations: l.Annotations}
				conv.Reused++
				continue
			}
		}
		nl, err := layer.Recompress(ctx, s, l, cfg.RootFS.DiffIDs[i], to, opts)
		if err != nil {
			return nil, err
		}
		d := nl.Descriptor()
		m.Layers[i] = v1.Descriptor{MediaType: nmt, Digest: d.Digest, Size: d.Size, Annotations: l.Annotations}
		conv.Recompressed++
	}
	nb, err := rewriteManifest(raw, m, mt, docker && to == layer.Zstd)
	if err != nil {
		return nil, err
	}
	d, err := s.PutBytes(ctx, mt, nb)
	if err != nil {
		return nil, err
	}
	conv.Manifest, conv.Converted = d, true
	if err := recordConversion(ctx, s, src, d, to, m.Annotations[oci.SlugAnnotation]); err != nil {
		return nil, err
	}
	return conv, nil
}

// convertible reports whether a layer of media type mt is one Convert
// recompresses: a distributable gzip or zstd layer.
func convertible(mt types.MediaType) bool {
	switch mt {
	case types.OCILayer, types.DockerLayer, types.OCILayerZStd:
		return true
	}
	return false
}

func needsConversion(ls []v1.Descriptor, to layer.Compression) bool {
	for _, l := range ls {
		if c, ok := layer.CompressionOf(l.MediaType); ok && convertible(l.MediaType) && c != to {
			return true
		}
	}
	return false
}

// layerMediaType is the media type of a layer compressed as to in a
// manifest of media type mt.
func layerMediaType(to layer.Compression, mt types.MediaType) types.MediaType {
	switch {
	case to == layer.Zstd:
		return types.OCILayerZStd
	case mt == types.DockerManifestSchema2:
		return types.DockerLayer
	}
	return types.OCILayer
}

// rewriteManifest writes m's media type and layers (and the config
// descriptor of a Docker manifest that became OCI) into the manifest raw,
// keeping every other field as it was.
func rewriteManifest(raw map[string]json.RawMessage, m v1.Manifest, mt types.MediaType, newConfig bool) ([]byte, error) {
	set := func(k string, v any) error {
		b, err := json.Marshal(v)
		raw[k] = b
		return err
	}
	err := errors.Join(set("mediaType", mt), set("layers", m.Layers))
	if newConfig {
		err = errors.Join(err, set("config", m.Config))
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(raw)
}

// recordedConversion finds the converted copy of subject recorded in
// index.json, if every blob of it is still in the store.
func recordedConversion(ctx context.Context, s *oci.Store, subject v1.Hash, to layer.Compression) (v1.Descriptor, bool) {
	idx, err := s.Index(ctx)
	if err != nil {
		return v1.Descriptor{}, false
	}
	for _, e := range idx.Manifests {
		if isConversion(e, subject.String(), to) && s.Complete(ctx, e) == nil {
			return v1.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size}, true
		}
	}
	return v1.Descriptor{}, false
}

func isConversion(e v1.Descriptor, subject string, to layer.Compression) bool {
	return e.ArtifactType == ConvertedArtifactType && e.Annotations[oci.SubjectAnnotation] == subject &&
		e.Annotations[CompressionAnnotation] == string(to)
}

// convertedLayers maps the digest of a stored layer to its copy in
// compression to, for every conversion recorded in index.json: the
// layers a chain of snapshots shares are recompressed once.
func convertedLayers(ctx context.Context, s *oci.Store, to layer.Compression) map[v1.Hash]v1.Descriptor {
	out := map[v1.Hash]v1.Descriptor{}
	idx, err := s.Index(ctx)
	if err != nil {
		return out
	}
	read := func(h v1.Hash) *v1.Manifest {
		b, err := s.ReadBlob(ctx, h, oci.MaxManifestSize)
		if err != nil {
			return nil
		}
		m, err := v1.ParseManifest(bytes.NewReader(b))
		if err != nil {
			return nil
		}
		return m
	}
	for _, e := range idx.Manifests {
		if e.ArtifactType != ConvertedArtifactType || e.Annotations[CompressionAnnotation] != string(to) {
			continue
		}
		sh, err := v1.NewHash(e.Annotations[oci.SubjectAnnotation])
		if err != nil {
			continue
		}
		from, conv := read(sh), read(e.Digest)
		if from == nil || conv == nil || len(from.Layers) != len(conv.Layers) {
			continue
		}
		for i, l := range from.Layers {
			if c := conv.Layers[i]; c.Digest != l.Digest {
				out[l.Digest] = c
			}
		}
	}
	return out
}

// recordConversion records d, the copy of src in compression to, in
// index.json (replacing an earlier one), unless src is no longer named
// there: a copy of a snapshot that is gone (or was only ever named by
// digest) stays unrecorded, and gc removes its blobs. Copies whose
// snapshot is gone are dropped on the way.
func recordConversion(ctx context.Context, s *oci.Store, src, d v1.Descriptor, to layer.Compression, slug string) error {
	d.ArtifactType = ConvertedArtifactType
	d.Annotations = map[string]string{oci.SubjectAnnotation: src.Digest.String(), CompressionAnnotation: string(to)}
	if slug != "" {
		d.Annotations[oci.SlugAnnotation] = slug
	}
	return s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		named := map[string]bool{}
		for _, e := range idx.Manifests {
			if e.ArtifactType != ConvertedArtifactType {
				named[e.Digest.String()] = true
			}
		}
		kept := idx.Manifests[:0]
		for _, e := range idx.Manifests {
			if e.ArtifactType == ConvertedArtifactType && (!named[e.Annotations[oci.SubjectAnnotation]] || isConversion(e, src.Digest.String(), to)) {
				continue
			}
			kept = append(kept, e)
		}
		idx.Manifests = kept
		if named[src.Digest.String()] {
			idx.Manifests = append(idx.Manifests, d)
		}
		return nil
	})
}
