package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/bot-bottle/bb/internal/testing/standin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The annotations container reads a loaded image's name from, in order
// (containerization's LocalOCILayoutClient.getImageReferencefromDescriptor).
const (
	appleName      = "com.apple.containerization.image.name"
	containerdName = "io.containerd.image.name"
	ociRefName     = "org.opencontainers.image.ref.name"
	createdAnno    = "dev.bot-bottle.standin.created"
)

type state struct {
	root   string // $BB_STANDIN_ROOT/container
	images string // OCI layout holding every loaded image
}

func openState() (*state, error) {
	root, err := standin.Root("container")
	if err != nil {
		return nil, err
	}
	st := &state{root: root, images: filepath.Join(root, "images")}
	if err := os.MkdirAll(filepath.Join(st.images, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(st.images, "index.json")); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(filepath.Join(st.images, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return nil, err
		}
		if err := st.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}); err != nil {
			return nil, err
		}
	}
	return st, os.MkdirAll(filepath.Join(root, "containers"), 0o755)
}

func (st *state) index() (*v1.IndexManifest, error) {
	b, err := os.ReadFile(filepath.Join(st.images, "index.json"))
	if err != nil {
		return nil, err
	}
	return v1.ParseIndexManifest(bytes.NewReader(b))
}

func (st *state) writeIndex(idx *v1.IndexManifest) error {
	return standin.WriteJSON(filepath.Join(st.images, "index.json"), idx)
}

// EnvDomain models `container system property set registry.domain`:
// the domain short references are expanded with (docker.io by default;
// container 1.2.2 Sources/ContainerPersistence/ContainerSystemConfig.swift:242).
const EnvDomain = "BB_STANDIN_CONTAINER_REGISTRY_DOMAIN"

func defaultDomain() string {
	if d := os.Getenv(EnvDomain); d != "" {
		return d
	}
	return "docker.io"
}

// normalize expands a reference the way container's ClientImage does
// (container 1.2.2 ClientImage.swift:116-135): the default domain for
// references without one, library/ and :latest when the domain is
// docker.io, :latest when there is no tag.
func normalize(ref string) string {
	repo, tagOrDigest := ref, ""
	if i := strings.Index(ref, "@"); i >= 0 {
		repo, tagOrDigest = ref[:i], ref[i:]
	} else if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tagOrDigest = ref[:i], ref[i:]
	}
	if tagOrDigest == "" {
		tagOrDigest = ":latest"
	}
	first, _, hasSlash := strings.Cut(repo, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost") {
		repo = defaultDomain() + "/" + repo
	}
	if rest, ok := strings.CutPrefix(repo, "docker.io/"); ok && !strings.Contains(rest, "/") {
		repo = "docker.io/library/" + rest
	}
	return repo + tagOrDigest
}

// denormalize is what container image list shows.
func denormalize(ref string) string {
	r := strings.TrimPrefix(ref, "docker.io/")
	return strings.TrimPrefix(r, "library/")
}

// findImage returns the index entry named ref.
func (st *state) findImage(ref string) (*v1.Descriptor, error) {
	idx, err := st.index()
	if err != nil {
		return nil, err
	}
	want := normalize(ref)
	for i := range idx.Manifests {
		n := idx.Manifests[i].Annotations[containerdName]
		if n == ref || normalize(n) == want {
			return &idx.Manifests[i], nil
		}
	}
	return nil, nil
}

func (st *state) image(desc v1.Descriptor) (v1.Image, error) {
	return layout.Path(st.images).Image(desc.Digest)
}

// imageResource is container 1.x's JSON shape of an image.
type imageResource struct {
	ID            string         `json:"id"`
	Configuration imageConfig    `json:"configuration"`
	Variants      []imageVariant `json:"variants"`
}

type imageConfig struct {
	CreationDate string        `json:"creationDate"`
	Name         string        `json:"name"`
	Descriptor   v1.Descriptor `json:"descriptor"`
}

type imageVariant struct {
	Platform v1.Platform `json:"platform"`
	Digest   string      `json:"digest"`
	Size     int64       `json:"size"`
	Config   ociImage    `json:"config"`
}

// ociImage is containerization 0.40.1's ContainerizationOCI.Image
// (Sources/ContainerizationOCI/ImageConfig.swift:126-155): what image
// inspect prints of an image config.
type ociImage struct {
	Created      string     `json:"created,omitempty"`
	Author       string     `json:"author,omitempty"`
	Architecture string     `json:"architecture"`
	OS           string     `json:"os"`
	OSVersion    string     `json:"osVersion,omitempty"`
	OSFeatures   []string   `json:"osFeatures,omitempty"`
	Variant      string     `json:"variant,omitempty"`
	Config       *ociConfig `json:"config,omitempty"`
	Rootfs       struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
	History []v1.History `json:"history,omitempty"`
}

// ociConfig is containerization 0.40.1's ImageConfig
// (ImageConfig.swift:22-52): User, Env, Entrypoint, Cmd, WorkingDir,
// Labels and StopSignal only. ExposedPorts, Volumes, Healthcheck, Shell
// and the rest of an OCI config are dropped.
type ociConfig struct {
	User       string            `json:"User,omitempty"`
	Env        []string          `json:"Env,omitempty"`
	Entrypoint []string          `json:"Entrypoint,omitempty"`
	Cmd        []string          `json:"Cmd,omitempty"`
	WorkingDir string            `json:"WorkingDir,omitempty"`
	Labels     map[string]string `json:"Labels,omitempty"`
	StopSignal string            `json:"StopSignal,omitempty"`
}

func subset(cf *v1.ConfigFile) ociImage {
	o := ociImage{Author: cf.Author, Architecture: cf.Architecture, OS: cf.OS, OSVersion: cf.OSVersion,
		OSFeatures: cf.OSFeatures, Variant: cf.Variant, History: cf.History}
	if !cf.Created.IsZero() {
		o.Created = cf.Created.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	c := cf.Config
	o.Config = &ociConfig{User: c.User, Env: c.Env, Entrypoint: c.Entrypoint, Cmd: c.Cmd,
		WorkingDir: c.WorkingDir, Labels: c.Labels, StopSignal: c.StopSignal}
	o.Rootfs.Type = cf.RootFS.Type
	for _, d := range cf.RootFS.DiffIDs {
		o.Rootfs.DiffIDs = append(o.Rootfs.DiffIDs, d.String())
	}
	return o
}

func (st *state) resource(d v1.Descriptor) (imageResource, error) {
	r := imageResource{
		ID: d.Digest.Hex,
		Configuration: imageConfig{
			CreationDate: d.Annotations[createdAnno],
			Name:         d.Annotations[containerdName],
			Descriptor:   v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
		},
	}
	img, err := st.image(d)
	if err != nil {
		return r, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return r, err
	}
	sz := d.Size
	if m, err := img.Manifest(); err == nil {
		sz += m.Config.Size
		for _, l := range m.Layers {
			sz += l.Size
		}
	}
	r.Variants = []imageVariant{{Platform: v1.Platform{OS: cf.OS, Architecture: cf.Architecture}, Digest: d.Digest.String(), Size: sz, Config: subset(cf)}}
	return r, nil
}

func (st *state) cmdImageList(args []string) error {
	format, quiet := "table", false
	for i := 0; i < len(args); i++ {
		switch flagName(args[i]) {
		case "--format":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			format, i = v, j
		case "-q", "--quiet":
			quiet = true
		case "-v", "--verbose":
		default:
			return errf("invalidArgument", "unexpected argument %q", args[i])
		}
	}
	idx, err := st.index()
	if err != nil {
		return err
	}
	if format == "json" {
		out := []imageResource{}
		for _, d := range idx.Manifests {
			r, err := st.resource(d)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if !quiet {
		fmt.Fprintln(tw, "NAME\tTAG\tDIGEST")
	}
	for _, d := range idx.Manifests {
		ref := denormalize(d.Annotations[containerdName])
		if quiet {
			fmt.Fprintln(tw, ref)
			continue
		}
		repo, tag := ref, "<none>"
		if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
			repo, tag = ref[:i], ref[i+1:]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", repo, tag, d.Digest.Hex[:12])
	}
	return tw.Flush()
}

func (st *state) cmdImageInspect(args []string) error {
	var out []imageResource
	var missing []string
	for _, a := range args {
		d, err := st.findImage(a)
		if err != nil {
			return err
		}
		if d == nil {
			missing = append(missing, a)
			continue
		}
		r, err := st.resource(*d)
		if err != nil {
			return err
		}
		out = append(out, r)
	}
	if len(missing) > 0 {
		return errf("notFound", "image not found: %s", strings.Join(missing, ", "))
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return nil
}

func (st *state) cmdImageDelete(args []string) error {
	idx, err := st.index()
	if err != nil {
		return err
	}
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		d, err := st.findImage(a)
		if err != nil {
			return err
		}
		if d == nil {
			return errf("notFound", "image not found: %s", a)
		}
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.Annotations[containerdName] != d.Annotations[containerdName] {
				kept = append(kept, m)
			}
		}
		idx.Manifests = kept
		fmt.Println(a)
	}
	if err := st.writeIndex(idx); err != nil {
		return err
	}
	return st.gc()
}
