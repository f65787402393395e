package bottle

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bot-bottle/bb/archive"
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
	// Size is the archive's length when known (see archive.ReadOptions).
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

// Import reads an archive from r into m's store (archive.Read) and makes
// each image the current snapshot of its bottle on this host, the way
// a pull does (AdoptSlugs, AdoptAll): tagged in the store, metadata.json
// restored, committed-image and the preserve marker written, so bb
// resume works. If the archive is refused, or a slug is taken, nothing
// changes: the blobs the import added are removed and no state is
// written.
func (m *Manager) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*ImportResult, error) {
	start := time.Now()
	if opts.As != "" {
		if err := state.ValidSlug(opts.As); err != nil {
			return nil, fmt.Errorf("--as: %w", err)
		}
	}
	c, err := archive.Read(ctx, m.Store, r, archive.ReadOptions{Size: opts.Size, Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	// Blobs the import added that end up unreferenced (a refusal, parts of
	// a docker archive, metadata rewritten for --as) go again.
	discarded := false
	defer func() {
		if !discarded {
			_ = c.Discard(context.WithoutCancel(ctx), m.Store)
		}
	}()

	ao := AdoptOptions{Backend: opts.Backend, Load: opts.Load, Force: opts.Force, As: opts.As, Verb: "import", Added: c.NewBlobs}
	arrivals := make([]Arrival, len(c.Images))
	for i, img := range c.Images {
		arrivals[i] = Arrival{Manifest: img.Manifest, Slug: img.Slug, Name: img.Name, Metadata: img.Metadata}
	}
	slugs, err := m.AdoptSlugs(ctx, arrivals, ao)
	if err != nil {
		return nil, err
	}
	for i := range arrivals {
		if arrivals[i].Metadata, err = withBackend(arrivals[i].Metadata, slugs[i], opts.Backend); err != nil {
			return nil, err
		}
	}
	committed, err := m.AdoptAll(ctx, arrivals, slugs, ao)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Format: c.Format, Bytes: c.Bytes, NewBlobs: len(c.NewBlobs)}
	for i, img := range c.Images {
		res.Images = append(res.Images, ImportedImage{
			Slug: slugs[i], Digest: img.Manifest.Digest.String(), Name: img.Name,
			Metadata: img.Metadata != nil, Committed: committed[i],
		})
	}
	// NewBlobs counts what stays: not the blobs only the archive's
	// layout needed (the image index pairing an image with its metadata).
	if err := c.Discard(ctx, m.Store); err == nil {
		discarded = true
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
func (m *Manager) ImportFile(ctx context.Context, path string, opts ImportOptions) (*ImportResult, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("importing: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		opts.Size = fi.Size()
	}
	res, err := m.Import(ctx, f, opts)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", path, err)
	}
	return res, nil
}

// withBackend records backend (if set) in the bottle's metadata.json as
// bb import has always done, so that bb resume finds the bottle's
// runtime later; an image without metadata gets a minimal one.
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
