package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is one image to put into an archive.
type Image struct {
	// Manifest is the image manifest's descriptor in the store.
	Manifest v1.Descriptor
	// Slug is the bottle the image is a snapshot of.
	Slug string
	// Name is the full reference loaders record; empty means
	// state.FullCommittedRef(Slug).
	Name string
	// Annotations go on the image's index.json entry, next to the names.
	Annotations map[string]string
	// Metadata is the bottle's metadata.json; nil leaves it out.
	Metadata []byte
}

// ExportOptions tune Export, ExportFile and Write.
type ExportOptions struct {
	// Progress, if set, is called with the number of bytes written so far.
	Progress func(n int64)
	// NoMetadata leaves the bottle metadata out: index.json then names
	// each image manifest directly, the layout older tools such as umoci
	// 0.4.7 need (they take the metadata artifact for a second image).
	NoMetadata bool
	// Compression is CompressionAsStored (copy layers as they are),
	// CompressionGzip or CompressionZstd (recompress the layers of the
	// other kind; such an image gets a new manifest digest, its config and
	// diffIDs stay; the copy stays in the store for the next export).
	Compression string
	// Layout is LayoutSingle (one index.json entry per snapshot, the
	// default) or LayoutReferrers (the image manifest and a referrers
	// tag entry per snapshot). See the package documentation for which
	// tools read which.
	Layout string
}

// Layouts Write can give index.json (ExportOptions.Layout).
const (
	// LayoutSingle names one entry per snapshot in index.json: the image
	// manifest, or, when the snapshot has bottle metadata, an image index
	// that holds the image and the metadata artifact. Tools that take
	// "the" image of a layout need no name (skopeo 1.9 oci-archive:FILE,
	// crane push DIR), but the name resolves to that index, so oras
	// discover needs --platform, regctl artifact list finds no referrer
	// and umoci 0.4.7 sees two candidate images.
	LayoutSingle = ""
	// LayoutReferrers names the image manifest itself, plus, when the
	// snapshot has bottle metadata, a second entry: the OCI referrers tag
	// schema's index (org.opencontainers.image.ref.name
	// sha256-<image hex>, as regctl image copy --referrers writes into an
	// OCI layout) that lists the metadata artifact. regctl artifact list,
	// oras discover and umoci read it without extra flags; skopeo needs
	// the image's name (oci-archive:FILE:latest) and crane push --index.
	LayoutReferrers = "referrers"
)

// ValidLayout checks an ExportOptions.Layout value.
func ValidLayout(l string) error {
	switch l {
	case LayoutSingle, "single", LayoutReferrers:
		return nil
	}
	return fmt.Errorf("unknown export layout %q: give single (one index.json entry per snapshot) or referrers (the image plus a referrers tag entry)", l)
}

// ExportResult describes a written archive.
type ExportResult struct {
	Images   []ExportedImage `json:"images"`
	Blobs    int             `json:"blobs"`
	Bytes    int64           `json:"bytes"`
	Duration time.Duration   `json:"duration"`
	// Converted lists the slugs whose layers were written in another
	// compression than stored (their manifest digest in the archive is
	// new).
	Converted []string `json:"converted,omitempty"`
	// Zstd lists the slugs written with zstd layers, which docker load
	// before Docker 23 cannot read (CompressionGzip converts them).
	Zstd []string `json:"zstd,omitempty"`
}

// ExportedImage is one image in a written archive.
type ExportedImage struct {
	Slug string `json:"slug"`
	Name string `json:"name"`
	// RefName is the image's org.opencontainers.image.ref.name in
	// index.json: the name OCI layout tools (skopeo oci-archive:FILE:NAME,
	// umoci --image DIR:NAME, oras, regctl) select it by.
	RefName string `json:"refName"`
	// Digest is the image manifest's digest.
	Digest string `json:"digest"`
	// Index is the digest of the image index that pairs the image with
	// its metadata artifact, when the image has metadata and the layout
	// is LayoutSingle; index.json names this index.
	Index string `json:"index,omitempty"`
	// Referrers is the digest of the referrers index that lists the
	// metadata artifact, when the image has metadata and the layout is
	// LayoutReferrers; index.json names it ReferrersTag.
	Referrers string `json:"referrers,omitempty"`
	// ReferrersTag is the referrers index's
	// org.opencontainers.image.ref.name: sha256-<hex of the image
	// manifest>.
	ReferrersTag string `json:"referrersTag,omitempty"`
	Metadata     bool   `json:"metadata"`
}

// Resolve finds the images refs name in the store (a slug, a store tag
// or a manifest digest) with their bottle slugs, annotations and
// metadata, ready for Write.
func Resolve(ctx context.Context, s *oci.Store, refs []string) ([]Image, error) {
	if len(refs) == 0 {
		return nil, errors.New("nothing to export: name a slug, a store tag or a digest (see bb list)")
	}
	var out []Image
	seen := map[v1.Hash]bool{}
	for _, ref := range refs {
		desc, err := s.Resolve(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("exporting %s: %w", ref, err)
		}
		if desc.ArtifactType == snapshot.MetadataArtifactType {
			return nil, fmt.Errorf("exporting %s: it is a bottle metadata artifact, not a snapshot", ref)
		}
		mb, err := s.ReadBlob(ctx, desc.Digest, oci.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("exporting %s: %w", ref, err)
		}
		man, err := parseManifest(mb)
		if err != nil {
			return nil, fmt.Errorf("exporting %s: manifest %s: %w", ref, desc.Digest, err)
		}
		if man.MediaType != "" {
			desc.MediaType = man.MediaType
		}
		if !desc.MediaType.IsImage() {
			return nil, fmt.Errorf("exporting %s: %s is a %s, not an image manifest", ref, desc.Digest, desc.MediaType)
		}
		if seen[desc.Digest] {
			continue
		}
		seen[desc.Digest] = true
		ann := map[string]string{}
		for _, m := range []map[string]string{man.Annotations, desc.Annotations} {
			for k, v := range m {
				if strings.HasPrefix(k, "dev.bot-bottle.") || k == oci.CreatedAnnotation {
					ann[k] = v
				}
			}
		}
		slug := ann[oci.SlugAnnotation]
		if slug == "" && !strings.HasPrefix(ref, "sha256:") && state.ValidSlug(ref) == nil {
			slug = ref
		}
		if slug == "" {
			return nil, fmt.Errorf("exporting %s: the image carries no bottle slug (%s annotation); export it by its slug or tag", ref, oci.SlugAnnotation)
		}
		ann[oci.SlugAnnotation] = slug
		md, err := snapshot.GetMetadata(ctx, s, desc.Digest)
		if err != nil && !errors.Is(err, oci.ErrNotFound) {
			return nil, fmt.Errorf("exporting %s: reading its bottle metadata: %w", ref, err)
		}
		out = append(out, Image{
			Manifest:    v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
			Slug:        slug,
			Annotations: ann,
			Metadata:    md,
		})
	}
	return out, nil
}

// Export writes the images refs name (see Resolve) to w as one archive.
func Export(ctx context.Context, s *oci.Store, w io.Writer, refs []string, opts ExportOptions) (*ExportResult, error) {
	imgs, err := Resolve(ctx, s, refs)
	if err != nil {
		return nil, err
	}
	return Write(ctx, s, w, imgs, opts)
}

// ExportFile writes the archive to path through a temporary file in the
// same directory and a rename, so a failed export leaves no partial
// file. A path that exists and is not a regular file (/dev/null, a FIFO)
// is written in place.
func ExportFile(ctx context.Context, s *oci.Store, path string, refs []string, opts ExportOptions) (*ExportResult, error) {
	imgs, err := Resolve(ctx, s, refs)
	if err != nil {
		return nil, err
	}
	if err := outsideStore(s, path); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return nil, fmt.Errorf("exporting to %s: it is a directory; give a file name", path)
		}
		if err := trustedTarget(path, fi); err != nil {
			return nil, fmt.Errorf("exporting to %s: %w", path, err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("exporting to %s: %w", path, err)
		}
		if ofi, err := f.Stat(); err != nil || !os.SameFile(fi, ofi) {
			f.Close()
			return nil, fmt.Errorf("exporting to %s: it changed while it was opened", path)
		}
		res, err := Write(ctx, s, f, imgs, opts)
		if cerr := f.Close(); err == nil && cerr != nil {
			return nil, fmt.Errorf("exporting to %s: %w", path, cerr)
		}
		return res, err
	}
	_, _ = iox.RemoveStaleBeside(path, oci.TempGrace) // of killed exports
	tmp, err := os.CreateTemp(filepath.Dir(path), iox.StaleTempPrefix(path)+"*")
	if err != nil {
		return nil, fmt.Errorf("exporting to %s: %w (is the directory writable?)", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	res, err := Write(ctx, s, tmp, imgs, opts)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return nil, fmt.Errorf("exporting to %s: %w", path, err)
	}
	return res, nil
}

// trustedTarget checks a non-regular export target (a FIFO, a device,
// /dev/stdout) before bb writes into it in place: it and the symlink
// naming it, if any, must belong to the user bb runs as or to root. A
// FIFO or a symlink another user planted at a path in a shared
// directory (/tmp/x.tar) would otherwise receive the snapshots, which
// bb keeps private, or send them to a device.
func trustedTarget(path string, fi os.FileInfo) error {
	euid := os.Geteuid()
	ours := func(fi os.FileInfo) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		return !ok || int(st.Uid) == euid || st.Uid == 0
	}
	if lfi, err := os.Lstat(path); err != nil {
		return err
	} else if lfi.Mode()&os.ModeSymlink != 0 && !ours(lfi) {
		return errors.New("it is a symlink another user owns: refusing to follow it; remove it or choose another path")
	}
	if !ours(fi) {
		return fmt.Errorf("it is a %s another user owns: refusing to write bb's snapshots into it; remove it or choose another path", fileKind(fi.Mode()))
	}
	return nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "FIFO"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	case m&os.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// plannedBlob is a blob to write: from memory (data) or from the store.
type plannedBlob struct {
	digest v1.Hash
	size   int64
	data   []byte
}

// exportPlan is what Write will write, worked out before the first byte:
// every blob (small ones from memory first, then layers from the store,
// each once), index.json and manifest.json.
type exportPlan struct {
	s            *oci.Store
	opts         ExportOptions
	images       int
	small, large []plannedBlob
	planned      map[v1.Hash]bool
	index        v1.IndexManifest
	legacy       []DockerManifest
	res          *ExportResult
	// names and refNames are the full names and the layout names given
	// so far, with the snapshot each names.
	names, refNames map[string]v1.Hash
}

// Write writes images to w as one archive that is both an OCI image
// layout and a docker archive. Every blob is checked to be in the store
// with its declared size before the first byte is written; blobs are
// then copied as they are, each read once.
func Write(ctx context.Context, s *oci.Store, w io.Writer, images []Image, opts ExportOptions) (*ExportResult, error) {
	start := time.Now()
	if len(images) == 0 {
		return nil, errors.New("nothing to export")
	}
	if err := ValidCompression(opts.Compression); err != nil {
		return nil, err
	}
	if err := ValidLayout(opts.Layout); err != nil {
		return nil, err
	}
	images, converted, err := convertImages(ctx, s, images, opts.Compression)
	if err != nil {
		return nil, err
	}
	p := &exportPlan{
		s: s, opts: opts, images: len(images), planned: map[v1.Hash]bool{},
		index:  v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}},
		legacy: []DockerManifest{}, res: &ExportResult{},
		names: map[string]v1.Hash{}, refNames: map[string]v1.Hash{},
	}
	for _, img := range images {
		if err := p.addImage(ctx, img); err != nil {
			return nil, fmt.Errorf("exporting %s: %w", img.Slug, err)
		}
	}
	aw := NewWriter(ctx, w, opts.Progress)
	if err := p.emit(ctx, aw); err != nil {
		return nil, err
	}
	res := p.res
	res.Blobs = len(p.small) + len(p.large)
	res.Converted = converted
	res.Bytes = aw.Len()
	res.Duration = time.Since(start)
	return res, nil
}

// convertImages recompresses the layers of images into compression
// when it asks for a conversion, and lists the slugs it converted.
func convertImages(ctx context.Context, s *oci.Store, images []Image, compression string) ([]Image, []string, error) {
	if !converting(compression) {
		return images, nil, nil
	}
	var converted []string
	images = slices.Clone(images)
	for i := range images {
		img, changed, err := convert(ctx, s, images[i], compression)
		if err != nil {
			return nil, nil, fmt.Errorf("exporting %s with %s layers: %w", images[i].Slug, compression, err)
		}
		images[i] = img
		if changed {
			converted = append(converted, img.Slug)
		}
	}
	return images, converted, nil
}

func (p *exportPlan) add(large bool, b plannedBlob) {
	if p.planned[b.digest] {
		return
	}
	p.planned[b.digest] = true
	if large {
		p.large = append(p.large, b)
	} else {
		p.small = append(p.small, b)
	}
}

// addBytes plans a blob from memory and returns its digest.
func (p *exportPlan) addBytes(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	p.add(false, plannedBlob{digest: h, size: int64(len(b)), data: b})
	return h
}

// readStored reads a manifest or config from the store, checking that it
// has the size its descriptor says.
func (p *exportPlan) readStored(ctx context.Context, what string, d v1.Descriptor, limit int64) ([]byte, error) {
	b, err := p.s.ReadBlob(ctx, d.Digest, limit)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != d.Size {
		return nil, fmt.Errorf("%s %s has %d bytes in the store, not %d", what, d.Digest, len(b), d.Size)
	}
	return b, nil
}

// addImage plans one image: its manifest, config and layers, its
// manifest.json entry and its index.json entries.
func (p *exportPlan) addImage(ctx context.Context, img Image) error {
	mb, err := p.readStored(ctx, "manifest", img.Manifest, oci.MaxManifestSize)
	if err != nil {
		return err
	}
	man, err := parseManifest(mb)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", img.Manifest.Digest, err)
	}
	name := img.Name
	if name == "" {
		name = state.FullCommittedRef(img.Slug)
	}
	if prev, ok := p.names[name]; ok && prev != img.Manifest.Digest {
		return fmt.Errorf("two different snapshots would both be named %s; export them into separate archives", name)
	}
	p.names[name] = img.Manifest.Digest
	cb, err := p.s.ReadBlob(ctx, man.Config.Digest, oci.MaxConfigSize)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if int64(len(cb)) != man.Config.Size {
		return fmt.Errorf("config %s has %d bytes in the store, not %d", man.Config.Digest, len(cb), man.Config.Size)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(cb))
	if err != nil {
		return fmt.Errorf("parsing config %s: %w", man.Config.Digest, err)
	}
	p.add(false, plannedBlob{digest: img.Manifest.Digest, size: img.Manifest.Size, data: mb})
	p.add(false, plannedBlob{digest: man.Config.Digest, size: man.Config.Size, data: cb})
	if err := p.addLayers(ctx, img, name, man); err != nil {
		return err
	}
	return p.addEntries(img, name, indexEntry(v1.Descriptor{MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size}, cfg, ""))
}

// addLayers plans an image's layers, each checked to be in the store
// with its size, and its manifest.json entry.
func (p *exportPlan) addLayers(ctx context.Context, img Image, name string, man *v1.Manifest) error {
	repoTag := familiar(name)
	if p.opts.Layout == LayoutReferrers {
		// podman load reads this layout as a docker archive (its
		// oci-archive: reader wants one index.json entry) and puts
		// localhost/ before a name without a registry.
		repoTag = name
	}
	le := DockerManifest{Config: BlobsDir + man.Config.Digest.Hex, RepoTags: []string{repoTag}, Layers: []string{}}
	for _, l := range man.Layers {
		n, err := p.s.Stat(ctx, l.Digest)
		if err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		if n != l.Size {
			return fmt.Errorf("layer %s has %d bytes in the store, not %d: the store is damaged; commit the bottle again", l.Digest, n, l.Size)
		}
		p.add(true, plannedBlob{digest: l.Digest, size: l.Size})
		if l.MediaType == types.OCILayerZStd && !slices.Contains(p.res.Zstd, img.Slug) {
			p.res.Zstd = append(p.res.Zstd, img.Slug)
		}
		le.Layers = append(le.Layers, BlobsDir+l.Digest.Hex)
	}
	p.legacy = append(p.legacy, le)
	return nil
}

// addEntries plans an image's index.json entries (d is the image's own
// descriptor, with its platform) and, with its metadata, the artifact
// and the index that pairs them (LayoutSingle) or the referrers index
// (LayoutReferrers).
func (p *exportPlan) addEntries(img Image, name string, d v1.Descriptor) error {
	ann := map[string]string{}
	for k, v := range img.Annotations {
		ann[k] = v
	}
	ref := refName(name, p.images)
	if prev, ok := p.refNames[ref]; ok && prev != img.Manifest.Digest {
		return fmt.Errorf("two different snapshots would both have the layout name %q; export them into separate archives", ref)
	}
	p.refNames[ref] = img.Manifest.Digest
	ann[oci.ContainerdNameAnnotation] = name
	ann[oci.AppleNameAnnotation] = name
	ann[oci.RefNameAnnotation] = ref
	if img.Slug != "" {
		ann[oci.SlugAnnotation] = img.Slug
	}
	ei := ExportedImage{Slug: img.Slug, Name: name, RefName: ref, Digest: img.Manifest.Digest.String()}
	top := d
	var extra *v1.Descriptor // the referrers tag entry (LayoutReferrers)
	if img.Metadata != nil && !p.opts.NoMetadata {
		var err error
		if top, extra, err = p.addMetadata(img, d, &ei); err != nil {
			return err
		}
	}
	top.Annotations = ann
	p.index.Manifests = append(p.index.Manifests, top)
	if extra != nil {
		p.index.Manifests = append(p.index.Manifests, *extra)
	}
	p.res.Images = append(p.res.Images, ei)
	return nil
}

// addMetadata plans an image's metadata artifact and returns the
// index.json entry that names the snapshot and, in LayoutReferrers, the
// referrers tag entry.
func (p *exportPlan) addMetadata(img Image, d v1.Descriptor, ei *ExportedImage) (v1.Descriptor, *v1.Descriptor, error) {
	amb, blobs, err := snapshot.MetadataManifest(v1.Descriptor{MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size}, img.Metadata)
	if err != nil {
		return d, nil, err
	}
	ah := p.addBytes(amb)
	for _, h := range sortedHashes(blobs) {
		p.add(false, plannedBlob{digest: h, size: int64(len(blobs[h])), data: blobs[h]})
	}
	meta := v1.Descriptor{
		MediaType:    types.OCIManifestSchema1,
		ArtifactType: snapshot.MetadataArtifactType,
		Digest:       ah,
		Size:         int64(len(amb)),
		Platform:     &v1.Platform{OS: "unknown", Architecture: "unknown"},
		Annotations:  map[string]string{oci.SlugAnnotation: img.Slug},
	}
	ei.Metadata = true
	if p.opts.Layout != LayoutReferrers {
		ib, err := imageWithMetadata(d, meta)
		if err != nil {
			return d, nil, err
		}
		ih := p.addBytes(ib)
		ei.Index = ih.String()
		return v1.Descriptor{MediaType: types.OCIImageIndex, Digest: ih, Size: int64(len(ib))}, nil, nil
	}
	rb, err := referrersIndex(meta)
	if err != nil {
		return d, nil, err
	}
	rh := p.addBytes(rb)
	tag := referrersTag(img.Manifest.Digest)
	if prev, ok := p.refNames[tag]; ok && prev != img.Manifest.Digest {
		return d, nil, fmt.Errorf("the layout name %q is taken by another snapshot; export them into separate archives", tag)
	}
	p.refNames[tag] = img.Manifest.Digest
	ei.Referrers, ei.ReferrersTag = rh.String(), tag
	return d, &v1.Descriptor{MediaType: types.OCIImageIndex, Digest: rh, Size: int64(len(rb)), Annotations: map[string]string{oci.RefNameAnnotation: tag}}, nil
}

// emit writes the plan: oci-layout, index.json, manifest.json, the blob
// directories, then every blob, small ones first.
func (p *exportPlan) emit(ctx context.Context, aw *Writer) error {
	if err := aw.Layout(p.index); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	if err := aw.JSON(ManifestFile, p.legacy); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	if err := aw.BlobDirs(); err != nil {
		return fmt.Errorf("writing archive: %w", err)
	}
	for _, b := range append(p.small, p.large...) {
		if err := ctx.Err(); err != nil {
			return err
		}
		var err error
		if b.data != nil {
			if err = aw.File(BlobsDir+b.digest.Hex, b.data); err != nil {
				err = fmt.Errorf("writing archive: %w", err)
			}
		} else {
			err = aw.Blob(p.s, BlobsDir+b.digest.Hex, v1.Descriptor{Digest: b.digest, Size: b.size})
		}
		if err != nil {
			return err
		}
	}
	return aw.Close()
}

// refName is an image's org.opencontainers.image.ref.name: "latest" when
// the archive holds one image (the name tools pick by default), else a
// name per image without ':' or '/' (which oras, regctl and umoci read
// as separators): the repository's last component, plus "-TAG" for a tag
// other than latest.
func refName(name string, images int) string {
	repo, tag := splitName(familiar(name))
	if images == 1 && tag != "" {
		return tag
	}
	if i := strings.LastIndex(repo, "/"); i >= 0 {
		repo = repo[i+1:]
	}
	if tag != "" && tag != "latest" {
		repo += "-" + tag
	}
	return repo
}

// imageWithMetadata is the image index that a snapshot with bottle
// metadata is exported as: the image (with its platform) and the
// metadata artifact whose subject it is (platform unknown/unknown, the
// convention docker and containerd use for entries that are not
// runnable), in LayoutSingle. index.json then names one entry per
// snapshot, which tools that take "the" image of a layout (skopeo
// oci-archive:FILE, crane push of a directory) need, while oras, which
// indexes the whole graph, finds the metadata as a referrer of the image
// (given the platform, to resolve the name to the image).
func imageWithMetadata(img, meta v1.Descriptor) ([]byte, error) {
	return json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{img, meta}})
}

// referrersIndex is the OCI referrers tag schema's index that lists the
// metadata artifact (image-spec 1.1, distribution-spec 1.1 "referrers tag
// schema"), which regctl reads in an OCI layout by its tag.
func referrersIndex(meta v1.Descriptor) ([]byte, error) {
	return json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{meta}})
}

// referrersTag is the referrers tag schema's name for the referrers of
// the manifest h: <algorithm>-<hex>.
func referrersTag(h v1.Hash) string { return h.Algorithm + "-" + h.Hex }

func sortedHashes(m map[v1.Hash][]byte) []v1.Hash {
	out := make([]v1.Hash, 0, len(m))
	for h := range m {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hex < out[j].Hex })
	return out
}

// outsideStore refuses an export path inside the store (its index.json,
// a blob): writing there would replace what the store holds.
func outsideStore(s *oci.Store, path string) error {
	real := func(p string) string {
		abs, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		// The file may not exist yet: resolve its directory.
		if d, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
			return filepath.Join(d, filepath.Base(abs))
		}
		return abs
	}
	root, err := filepath.EvalSymlinks(s.Root())
	if err != nil {
		root = s.Root()
	}
	p := real(path)
	if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if t, err := filepath.EvalSymlinks(p); err == nil {
			p = t
		}
	}
	if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		return fmt.Errorf("exporting to %s: that is inside bb's store (%s); give a path outside it", path, s.Root())
	}
	return nil
}
