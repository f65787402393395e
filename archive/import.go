package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// ImportOptions tune Import.
type ImportOptions struct {
	// As is the slug to import the archive's one image under; empty keeps
	// each image's own slug.
	As string
	// Backend overrides the backend the bottle's metadata names.
	Backend string
	// Load installs the snapshot into its runtime now (else bb resume does).
	Load bool
	// Force replaces a different snapshot, or the state, of the same slug.
	Force bool
	// Size is the archive's length when known (see ReadOptions).
	Size int64
	// Progress, if set, is called with the bytes of the archive read so far.
	Progress func(n int64)
}

// ImportResult describes an import.
type ImportResult struct {
	Images   []ImportedImage `json:"images"`
	Format   string          `json:"format"`
	Bytes    int64           `json:"bytes"`
	NewBlobs int             `json:"newBlobs"`
	Duration time.Duration   `json:"duration"`
}

// ImportedImage is one snapshot adopted by an import.
type ImportedImage struct {
	Slug      string `json:"slug"`
	Digest    string `json:"digest"`
	Name      string `json:"name,omitempty"`
	Metadata  bool   `json:"metadata"`
	Committed string `json:"committed,omitempty"`
}

// Import reads an archive from r into m's store (see Read) and makes each
// image the current snapshot of its bottle on this host (Manager.Adopt):
// tagged in the store, metadata.json restored, committed-image and the
// preserve marker written, so bb resume works. If the archive is refused,
// or a slug is taken, nothing changes: the blobs the import added are
// removed and no state is written.
func Import(ctx context.Context, m *bottle.Manager, r io.Reader, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	if opts.As != "" {
		if err := state.ValidSlug(opts.As); err != nil {
			return nil, fmt.Errorf("--as: %w", err)
		}
	}
	c, err := Read(ctx, m.Store, r, ReadOptions{Size: opts.Size, Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	// Blobs the import added that end up unreferenced (a refusal, parts of
	// a docker archive, metadata rewritten for --as) go again.
	defer func() { _ = c.Discard(context.WithoutCancel(ctx), m.Store) }()

	slugs, err := plan(c, opts)
	if err != nil {
		return nil, err
	}
	for i, img := range c.Images {
		if err := m.SlugFree(ctx, slugs[i], img.Manifest.Digest, opts.Force, "import"); err != nil {
			return nil, err
		}
	}
	res := &ImportResult{Format: c.Format, Bytes: c.Bytes, NewBlobs: len(c.NewBlobs)}
	for i, img := range c.Images {
		md, err := withBackend(img.Metadata, slugs[i], opts.Backend)
		if err != nil {
			return nil, err
		}
		committed, err := m.Adopt(ctx, slugs[i], img.Manifest, bottle.AdoptOptions{
			Metadata: md, Backend: opts.Backend, Load: opts.Load, Force: opts.Force,
		})
		if err != nil {
			return nil, fmt.Errorf("importing %s as %s: %w", img.Manifest.Digest, slugs[i], err)
		}
		res.Images = append(res.Images, ImportedImage{
			Slug: slugs[i], Digest: img.Manifest.Digest.String(), Name: img.Name,
			Metadata: img.Metadata != nil, Committed: committed,
		})
	}
	// NewBlobs counts what stays: not the blobs only the archive's
	// layout needed (the image index pairing an image with its metadata).
	if err := c.Discard(ctx, m.Store); err == nil {
		res.NewBlobs = 0
		for _, h := range c.NewBlobs {
			if _, err := m.Store.Stat(ctx, h); err == nil {
				res.NewBlobs++
			}
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

// ImportFile imports the archive at path ("-" is not special here).
func ImportFile(ctx context.Context, m *bottle.Manager, path string, opts ImportOptions) (*ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		opts.Size = fi.Size()
	}
	res, err := Import(ctx, m, f, opts)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	return res, nil
}

// plan picks the slug of each image.
func plan(c *Contents, opts ImportOptions) ([]string, error) {
	if opts.As != "" {
		if len(c.Images) != 1 {
			return nil, fmt.Errorf("the archive holds %d images; --as names one: %s", len(c.Images), describe(c.Images))
		}
		return []string{opts.As}, nil
	}
	slugs := make([]string, len(c.Images))
	seen := map[string]bool{}
	for i, img := range c.Images {
		if img.Slug == "" {
			what := img.Manifest.Digest.String()
			if img.Name != "" {
				what = img.Name + " (" + what + ")"
			}
			return nil, fmt.Errorf("image %s is not a bottle snapshot (no %s annotation): import it with --as SLUG", what, oci.SlugAnnotation)
		}
		if err := state.ValidSlug(img.Slug); err != nil {
			return nil, fmt.Errorf("image %s: %w: import it with --as SLUG", img.Manifest.Digest, err)
		}
		if seen[img.Slug] {
			return nil, fmt.Errorf("the archive holds two snapshots of %s: import one of them with --as", img.Slug)
		}
		seen[img.Slug] = true
		slugs[i] = img.Slug
	}
	return slugs, nil
}

func describe(imgs []FoundImage) string {
	var parts []string
	for _, i := range imgs {
		s := i.Manifest.Digest.String()
		if i.Name != "" {
			s = i.Name + " " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// withBackend records backend (if set) in the bottle's metadata.json, so
// that bb resume finds the bottle's runtime later; an image without
// metadata gets a minimal one.
func withBackend(raw []byte, slug, backend string) ([]byte, error) {
	if backend == "" {
		return raw, nil
	}
	if raw == nil {
		return json.Marshal(state.Metadata{Identity: slug, Backend: backend})
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("bottle metadata of %s is not a JSON object: %w", slug, err)
	}
	fields["backend"] = backend
	return json.Marshal(fields)
}
