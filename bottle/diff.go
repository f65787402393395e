package bottle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/bot-bottle/bb/fileindex"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DiffRequest selects what Diff compares.
type DiffRequest struct {
	// From and To are snapshots of the slug (a tag such as
	// slug-20260101T120000.000Z, or a manifest digest). Empty From is the
	// snapshot before To; empty To is the current snapshot.
	From, To string
	// Live compares From (default: the current snapshot) with the running
	// bottle.
	Live    bool
	Backend string
}

// DiffEntry is one path that differs.
type DiffEntry struct {
	Path string `json:"path"`
	// Type is find's %y: f, d, l, b, c, p, s.
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Replaced: a directory made again, or an entry whose type changed.
	Replaced bool `json:"replaced,omitempty"`
}

// DiffResult lists what differs between two snapshots (or a snapshot and
// the running bottle), each list sorted by path.
type DiffResult struct {
	Slug    string      `json:"slug"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Added   []DiffEntry `json:"added"`
	Changed []DiffEntry `json:"changed"`
	Deleted []DiffEntry `json:"deleted"`
	// Bytes is the size of the added and changed regular files.
	Bytes int64 `json:"bytes"`
	// Reserved counts the entries of To whose names start with ".wh."
	// (or that lie below such a directory): no snapshot holds them (see
	// layer.Reserved), so they are in none of the lists above.
	// ReservedPaths are the first few.
	Reserved      int      `json:"reserved,omitempty"`
	ReservedPaths []string `json:"reserved_paths,omitempty"`
}

// Diff compares two snapshots of slug by their file indexes, or a
// snapshot with the running bottle's files (Live).
func (m *Manager) Diff(ctx context.Context, slug string, req DiffRequest) (*DiffResult, error) {
	if err := state.ValidSlug(slug); err != nil {
		return nil, err
	}
	entries, err := snapshot.List(ctx, m.Store, slug)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("no snapshot of %s in the store (%s): run bb commit %s first", slug, m.Store.Root(), slug)
	}
	find := func(ref string) (int, error) {
		for i, e := range entries {
			if e.Tag == ref || e.Manifest.Digest.String() == ref {
				return i, nil
			}
		}
		return 0, fmt.Errorf("%q is not a snapshot of %s (see bb inspect %s)", ref, slug, slug)
	}
	current := 0
	for i, e := range entries {
		if e.Current {
			current = i
		}
	}
	res := &DiffResult{Slug: slug, Added: []DiffEntry{}, Changed: []DiffEntry{}, Deleted: []DiffEntry{}}
	report := func(c fileindex.Change) {
		d := DiffEntry{Path: c.Path, Type: string(c.Type), Size: c.Size, Replaced: c.Replaced}
		switch c.Kind {
		case fileindex.Added:
			res.Added = append(res.Added, d)
		case fileindex.Changed:
			res.Changed = append(res.Changed, d)
		case fileindex.Deleted:
			res.Deleted = append(res.Deleted, d)
		}
	}
	var from int
	var open func() (io.ReadCloser, error)
	if req.Live {
		if req.To != "" {
			return nil, errors.New("--live compares one snapshot with the running bottle: give at most FROM")
		}
		from = current
		if req.From != "" {
			if from, err = find(req.From); err != nil {
				return nil, err
			}
		}
		lister, excludes, name, err := m.lister(ctx, slug, req.Backend)
		if err != nil {
			return nil, err
		}
		res.To = "live:" + name
		open = func() (io.ReadCloser, error) {
			return lister.List(ctx, snapshot.StreamRequest{Excludes: excludes})
		}
	} else {
		to := current
		if req.To != "" {
			if to, err = find(req.To); err != nil {
				return nil, err
			}
		}
		from = to + 1 // entries are newest first
		if req.From != "" {
			if from, err = find(req.From); err != nil {
				return nil, err
			}
		} else if from >= len(entries) {
			return nil, fmt.Errorf("%s has no snapshot before %s to compare with: give FROM, or use --live", slug, entries[to].Tag)
		}
		res.To = entries[to].Tag
		toDigest := entries[to].Manifest.Digest
		if err := hasIndex(ctx, m.Store, toDigest, entries[to].Tag); err != nil {
			return nil, err
		}
		open = func() (io.ReadCloser, error) { return snapshot.OpenIndex(ctx, m.Store, toDigest) }
	}
	res.From = entries[from].Tag
	if err := hasIndex(ctx, m.Store, entries[from].Manifest.Digest, res.From); err != nil {
		return nil, err
	}
	plan, err := snapshot.DiffIndexes(ctx, m.Store, entries[from].Manifest.Digest, open, report)
	if err != nil {
		return nil, err
	}
	res.Bytes = plan.Bytes
	res.Reserved, res.ReservedPaths = plan.Reserved, plan.ReservedPaths
	for _, l := range [][]DiffEntry{res.Added, res.Changed, res.Deleted} {
		sort.Slice(l, func(i, j int) bool { return l[i].Path < l[j].Path })
	}
	return res, nil
}

func hasIndex(ctx context.Context, s *oci.Store, h v1.Hash, tag string) error {
	if _, err := snapshot.IndexOf(ctx, s, h); errors.Is(err, oci.ErrNotFound) {
		return fmt.Errorf("snapshot %s has no file index (imported, pulled, or made by a backend that cannot list its files): bb diff compares snapshots committed on this host", tag)
	} else if err != nil {
		return err
	}
	return nil
}

// lister prepares the running bottle for a listing.
func (m *Manager) lister(ctx context.Context, slug, backend string) (snapshot.Lister, []string, string, error) {
	backend, err := m.Backend(slug, backend)
	if err != nil {
		return nil, nil, "", err
	}
	rt, err := m.Runtime(backend)
	if err != nil {
		return nil, nil, "", err
	}
	info, err := rt.Inspect(ctx, slug)
	if err != nil {
		return nil, nil, "", err
	}
	if !info.Running {
		return nil, nil, "", fmt.Errorf("%s (%s): %w", info.Name, backend, ErrNotRunning)
	}
	prep, err := rt.Prepare(ctx, slug, PrepareOptions{})
	if err != nil {
		return nil, nil, "", err
	}
	l, ok := prep.Source.(snapshot.Lister)
	if !ok {
		return nil, nil, "", fmt.Errorf("the %s backend cannot list a running bottle's files", backend)
	}
	excludes := append(append([]string{}, snapshot.DefaultExcludes...), prep.Excludes...)
	return l, excludes, info.Name, nil
}
