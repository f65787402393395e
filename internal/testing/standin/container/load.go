package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// EnvLoadLog names a file the stand-in appends one line to for every
// blob image load hashes ("hashed DIGEST SIZE") or takes from the image
// store without reading the archive ("reused DIGEST"), and one line for
// the archive it extracted ("extracted BYTES"): a test hook, so tests can
// prove what a load cost.
const EnvLoadLog = "BB_STANDIN_CONTAINER_LOAD_LOG"

// cmdImageLoad follows container 1.2.2's image load (ImageLoad.swift,
// ImagesService.load: the archive is extracted whole into a temporary
// directory, then ImageStore.load of containerization 0.40.1 imports
// it): each image named in index.json is walked from its manifest, and
// every blob is taken from the image store when the store has its
// digest (ImageStore+Import.swift:144-154: the archive's copy is never
// read), else read from the archive and hashed
// (LocalOCILayoutClient.swift:63-107). A blob in neither fails the load
// with missingContent (LocalOCILayoutClient.swift:31-35) and nothing is
// stored (ImageStore+OCILayout.swift:105-107).
func (st *state) cmdImageLoad(ctx context.Context, args []string) error {
	input, force := "", false
	for i := 0; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-i", "--input":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			input, i = v, j
		case "-f", "--force":
			force = true
		default:
			return errf("invalidArgument", "unexpected argument %q", args[i])
		}
	}
	var in io.Reader = os.Stdin
	if input != "" {
		f, err := os.Open(input)
		if err != nil {
			fmt.Fprintf(os.Stderr, "error: file does not exist path=%s\n", input)
			return exitCode(1)
		}
		defer f.Close()
		in = f
	}
	lg := openLoadLog()
	defer lg.close()
	extracted, err := os.MkdirTemp(st.root, "extract-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(extracted)
	if err := extractArchive(ctx, in, extracted, force, lg); err != nil {
		return err
	}
	idx, err := loadLayoutIndex(extracted)
	if err != nil {
		return err
	}
	session, err := os.MkdirTemp(st.root, "ingest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(session)
	imp := &importer{st: st, from: filepath.Join(extracted, "blobs", "sha256"), session: session, log: lg}
	type loaded struct {
		ref  string
		desc v1.Descriptor
	}
	var imgs []loaded
	for _, d := range idx.Manifests {
		ref := imageName(d)
		if _, err := name.ParseReference(ref, name.WeakValidation); err != nil {
			return errf("invalidArgument", "invalid reference %q: %v", ref, err)
		}
		if err := imp.importRoot(ctx, d); err != nil {
			return err
		}
		imgs = append(imgs, loaded{ref, v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: d.Platform}})
	}
	if len(imgs) == 0 {
		return errf("internalError", "failed to import image")
	}
	if err := st.completeIngest(session); err != nil {
		return err
	}
	sidx, err := st.index()
	if err != nil {
		return err
	}
	for _, im := range imgs {
		kept := sidx.Manifests[:0]
		for _, m := range sidx.Manifests {
			if m.Annotations[containerdName] != im.ref {
				kept = append(kept, m)
			}
		}
		im.desc.Annotations = map[string]string{containerdName: im.ref, createdAnno: time.Now().UTC().Format(time.RFC3339Nano)}
		sidx.Manifests = append(kept, im.desc)
	}
	if err := st.writeIndex(sidx); err != nil {
		return err
	}
	for _, im := range imgs {
		fmt.Println(im.ref)
	}
	return nil
}

// extractArchive writes the archive's regular files under dir, as
// ImagesService.load's ArchiveReader.extractContents does (container
// 1.2.2 ImagesService.swift:236-244): nothing is hashed here. A member
// whose name leaves dir is rejected, and rejected members fail the load
// unless --force.
func extractArchive(ctx context.Context, in io.Reader, dir string, force bool, lg *loadLog) error {
	var rejected []string
	var total int64
	tr := tar.NewReader(in)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return errf("internalError", "reading archive: %v", err)
		}
		n := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if strings.HasPrefix(hdr.Name, "/") || n == ".." || strings.HasPrefix(n, "../") {
			rejected = append(rejected, hdr.Name)
			continue
		}
		if hdr.Typeflag != tar.TypeReg || !wanted(n) {
			continue
		}
		dst := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		f, err := os.Create(dst)
		if err != nil {
			return err
		}
		w, err := io.Copy(f, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return errf("internalError", "extracting %s: %v", hdr.Name, err)
		}
		total += w
	}
	lg.printf("extracted %d", total)
	if len(rejected) > 0 && !force {
		return errf("invalidArgument", "cannot load tar image with rejected paths: %v", rejected)
	}
	return nil
}

// wanted reports whether the import can read the member n: the layout
// files and blobs/sha256/* (the stand-in does not write the rest).
func wanted(n string) bool {
	return n == "oci-layout" || n == "index.json" || strings.HasPrefix(n, "blobs/sha256/") && !strings.Contains(n[len("blobs/sha256/"):], "/")
}

// loadLayoutIndex follows LocalOCILayoutClient.loadIndexFromOCILayout
// (LocalOCILayoutClient.swift:153-174).
func loadLayoutIndex(dir string) (*v1.IndexManifest, error) {
	lp := filepath.Join(dir, "oci-layout")
	b, err := os.ReadFile(lp)
	if err != nil {
		return nil, errf("notFound", "%s", lp)
	}
	var lay map[string]string
	if err := json.Unmarshal(b, &lay); err != nil || lay["imageLayoutVersion"] == "" {
		return nil, errf("empty", "missing key imageLayoutVersion in %s", lp)
	}
	ip := filepath.Join(dir, "index.json")
	b, err = os.ReadFile(ip)
	if err != nil {
		return nil, errf("notFound", "%s", ip)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
	if err != nil {
		return nil, errf("internalError", "parsing index.json: %v", err)
	}
	return idx, nil
}

// importer is containerization's ImportOperation with the OCI layout
// client: blobs come from the image store when it has them, else from
// the extracted archive, into an ingest session.
type importer struct {
	st      *state
	from    string // the extracted archive's blobs/sha256
	session string // the ingest session: blobs new to the store
	log     *loadLog
}

// importRoot walks root level by level, fetching each level's blobs
// first (ImageStore+Import.swift:45-64); a single manifest must name
// exactly one platform (:66-79, :202-254). image load matches every
// platform (ImageStore+OCILayout.swift:77).
func (im *importer) importRoot(ctx context.Context, root v1.Descriptor) error {
	todo := []v1.Descriptor{root}
	for len(todo) > 0 {
		for _, d := range todo {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := im.fetch(d); err != nil {
				return err
			}
		}
		next, err := im.walk(todo)
		if err != nil {
			return err
		}
		seen := map[v1.Hash]bool{}
		todo = next[:0:0]
		for _, d := range next {
			if !seen[d.Digest] {
				seen[d.Digest] = true
				todo = append(todo, d)
			}
		}
	}
	if root.MediaType == types.OCIImageIndex || root.MediaType == types.DockerManifestList {
		return nil
	}
	var platforms []string
	kids, err := im.walk([]v1.Descriptor{root})
	if err != nil {
		return err
	}
	for _, k := range kids {
		switch {
		case k.Platform != nil:
			platforms = append(platforms, k.Platform.String())
		case k.MediaType == types.OCIConfigJSON || k.MediaType == types.DockerConfigJSON:
			b, err := im.content(k)
			if err != nil {
				return err
			}
			var cf struct {
				OS           string `json:"os"`
				Architecture string `json:"architecture"`
			}
			if err := json.Unmarshal(b, &cf); err != nil {
				return errf("internalError", "cannot fetch content with digest %s", k.Digest)
			}
			platforms = append(platforms, cf.OS+"/"+cf.Architecture)
		}
	}
	if len(platforms) != 1 {
		return errf("internalError", "descriptor %s with digest %s does not list any supported platform or supports more than one platform, supported platforms: %v", root.MediaType, root.Digest, platforms)
	}
	return nil
}

// fetch follows ImportOperation.fetch (ImageStore+Import.swift:144-200):
// a blob the store has is taken from it and the archive's copy is not
// read; any other is copied from the archive and hashed, and must match
// its digest. Sizes are not checked (the import ignores them).
func (im *importer) fetch(d v1.Descriptor) error {
	if _, err := os.Stat(im.st.blobPath(d.Digest)); err == nil {
		im.log.printf("reused %s", d.Digest)
		return nil
	}
	src, err := os.Open(filepath.Join(im.from, d.Digest.Hex))
	if err != nil {
		return errf("unknown", "missingContent(%q)", d.Digest.String())
	}
	defer src.Close()
	dst, err := os.Create(filepath.Join(im.session, d.Digest.Hex))
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(dst, h), src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	im.log.printf("hashed %s %d", d.Digest, n)
	if got != d.Digest.String() {
		return errf("internalError", "digest mismatch expected %s, got %s", d.Digest, got)
	}
	return nil
}

// content reads a fetched blob: from the store, else from the session
// (ImportOperation.getManifestContent, ImageStore+Import.swift:88-100).
func (im *importer) content(d v1.Descriptor) ([]byte, error) {
	b, err := os.ReadFile(im.st.blobPath(d.Digest))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(im.session, d.Digest.Hex))
	}
	if err != nil {
		return nil, errf("internalError", "cannot fetch content with digest %s", d.Digest)
	}
	return b, nil
}

// walk returns the children of manifests and indexes
// (ImageStore+Import.swift:102-120).
func (im *importer) walk(ds []v1.Descriptor) ([]v1.Descriptor, error) {
	var out []v1.Descriptor
	for _, d := range ds {
		switch d.MediaType {
		case types.OCIImageIndex, types.DockerManifestList:
			b, err := im.content(d)
			if err != nil {
				return nil, err
			}
			idx, err := v1.ParseIndexManifest(bytes.NewReader(b))
			if err != nil {
				return nil, errf("internalError", "cannot fetch content with digest %s", d.Digest)
			}
			out = append(out, idx.Manifests...)
		case types.OCIManifestSchema1, types.DockerManifestSchema2:
			b, err := im.content(d)
			if err != nil {
				return nil, err
			}
			m, err := v1.ParseManifest(bytes.NewReader(b))
			if err != nil {
				return nil, errf("internalError", "cannot fetch content with digest %s", d.Digest)
			}
			out = append(out, m.Config)
			out = append(out, m.Layers...)
		}
	}
	return out, nil
}

func (st *state) blobPath(h v1.Hash) string {
	return filepath.Join(st.images, "blobs", "sha256", h.Hex)
}

// completeIngest moves the session's blobs into the store, keeping a
// blob the store already has (LocalContentStore.swift:155-187).
func (st *state) completeIngest(session string) error {
	ents, err := os.ReadDir(session)
	if err != nil {
		return err
	}
	for _, e := range ents {
		dst := filepath.Join(st.images, "blobs", "sha256", e.Name())
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(session, e.Name()), dst); err != nil {
			return err
		}
	}
	return nil
}

// gc removes the blobs no image references, as container image delete
// does after deleting (container 1.2.2 ImageDelete.swift:72,80;
// containerization ImageStore.swift:154-161).
func (st *state) gc() error {
	idx, err := st.index()
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	im := &importer{st: st, session: filepath.Join(st.images, "blobs", "sha256")}
	todo := idx.Manifests
	for len(todo) > 0 {
		for _, d := range todo {
			keep[d.Digest.Hex] = true
		}
		next, err := im.walk(todo)
		if err != nil {
			return err
		}
		todo = next
	}
	dir := filepath.Join(st.images, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !keep[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadLog is the EnvLoadLog file, or nothing.
type loadLog struct{ f *os.File }

func openLoadLog() *loadLog {
	p := os.Getenv(EnvLoadLog)
	if p == "" {
		return &loadLog{}
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return &loadLog{}
	}
	return &loadLog{f: f}
}

func (l *loadLog) printf(format string, a ...any) {
	if l.f != nil {
		fmt.Fprintf(l.f, format+"\n", a...)
	}
}

func (l *loadLog) close() {
	if l.f != nil {
		l.f.Close()
	}
}

// imageName reads a loaded image's name from its index.json annotations
// (LocalOCILayoutClient.getImageReferencefromDescriptor,
// LocalOCILayoutClient.swift:208-235); without any, container 1.2.2
// (containerization 0.40) names it by digest.
func imageName(d v1.Descriptor) string {
	for _, k := range []string{appleName, containerdName, ociRefName} {
		if v := d.Annotations[k]; v != "" {
			return v
		}
	}
	return "untagged@" + d.Digest.String()
}
