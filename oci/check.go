package oci

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Kinds of Finding.
const (
	FindingIndex = "index"
	FindingTag   = "tag"
	FindingBlob  = "blob"
	FindingTemp  = "temp"
	FindingPerm  = "permissions"
)

// Finding is one problem Check found, what fixing it means, and whether
// it was fixed.
type Finding struct {
	Kind    string `json:"kind"`
	Path    string `json:"path,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Problem string `json:"problem"`
	// Fix is what Check with Fix set does about it; empty when that is
	// not safe to do unattended (the finding says what to do instead).
	Fix   string `json:"fix,omitempty"`
	Fixed bool   `json:"fixed,omitempty"`
}

// CheckOptions tune Check.
type CheckOptions struct {
	// Fix repairs what is safe: stray temporary files older than
	// TempGrace go, modes are tightened, blobs whose content does not
	// match their digest go if no tag reaches them (with the untagged
	// artifacts of a snapshot that reach them: a converted copy, a file
	// index, metadata).
	Fix bool
}

// CheckReport is the result of Check.
type CheckReport struct {
	Root  string `json:"root"`
	Tags  int    `json:"tags"`
	Blobs int    `json:"blobs"`
	Bytes int64  `json:"bytes"`
	// Unreferenced counts blobs no tag reaches (bb gc removes them once
	// they are older than GCGrace): not a problem.
	Unreferenced int       `json:"unreferenced"`
	Findings     []Finding `json:"findings"`
	// Problems counts the findings not fixed (see Tally).
	Problems int `json:"problems"`
}

// Tally sets Problems from Findings and reports whether nothing is wrong
// any more (every finding fixed).
func (r *CheckReport) Tally() bool {
	r.Problems = 0
	for _, f := range r.Findings {
		if !f.Fixed {
			r.Problems++
		}
	}
	return r.Problems == 0
}

// OK reports whether nothing is wrong any more (every finding fixed).
func (r *CheckReport) OK() bool { return r.Tally() }

// Check verifies the store as a user would before trusting it: every
// entry of index.json resolves to a complete image (manifest, config,
// layers present with their sizes), every blob hashes to its name,
// no temporary files of killed writes are left, and bb's files are
// private. With opts.Fix it repairs what is safe (see CheckOptions).
func (s *Store) Check(ctx context.Context, opts CheckOptions) (*CheckReport, error) {
	rep := &CheckReport{Root: s.root, Findings: []Finding{}}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	if err := s.checkModes(opts, add); err != nil {
		return nil, err
	}
	if err := s.checkTemps(opts, add); err != nil {
		return nil, err
	}
	refs, err := s.checkTags(ctx, rep, add)
	if err != nil {
		// index.json is unreadable: the finding says so, and the blobs
		// cannot be told reachable or not.
		rep.Tally()
		return rep, nil
	}
	if err := s.checkBlobs(ctx, opts, refs, rep, add); err != nil {
		return nil, err
	}
	rep.Tally()
	return rep, nil
}

// checkModes reports (and with opts.Fix tightens) the modes of
// everything under the root.
func (s *Store) checkModes(opts CheckOptions, add func(Finding)) error {
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if f := CheckMode(p, d.IsDir(), opts.Fix); f != nil {
			add(*f)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking %s: %w", s.root, err)
	}
	return nil
}

// checkTemps reports the temporary files of writes, removing (with
// opts.Fix) those older than TempGrace.
func (s *Store) checkTemps(opts CheckOptions, add func(Finding)) error {
	temps, err := s.tempFiles()
	if err != nil {
		return err
	}
	before := time.Now().Add(-TempGrace)
	for _, p := range temps {
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if fi.ModTime().After(before) {
			add(Finding{Kind: FindingTemp, Path: p, Problem: fmt.Sprintf("temporary file written %s ago: a write may be running; it counts as stale after %s", time.Since(fi.ModTime()).Round(time.Second), TempGrace)})
			continue
		}
		f := Finding{Kind: FindingTemp, Path: p, Problem: fmt.Sprintf("temporary file of a killed write (%d bytes, last written %s)", fi.Size(), fi.ModTime().UTC().Format(time.RFC3339)), Fix: "remove it"}
		if opts.Fix {
			if err := os.Remove(p); err == nil || errors.Is(err, fs.ErrNotExist) {
				f.Fixed = true
			} else {
				f.Problem += "; removing it failed: " + err.Error()
			}
		}
		add(f)
	}
	return nil
}

// checkTags reports the entries of index.json that do not resolve to a
// complete image, and returns, for each blob, the entries that reach it.
// It fails (after adding the finding) when index.json is unreadable.
func (s *Store) checkTags(ctx context.Context, rep *CheckReport, add func(Finding)) (map[v1.Hash][]string, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		add(Finding{Kind: FindingIndex, Path: filepath.Join(s.root, indexFile), Problem: err.Error()})
		return nil, err
	}
	refs := map[v1.Hash][]string{}
	for _, m := range idx.Manifests {
		name := m.Annotations[RefNameAnnotation]
		if name == "" {
			name = m.Digest.String()
		} else {
			rep.Tags++
		}
		if err := s.Complete(ctx, m); err != nil {
			add(Finding{Kind: FindingTag, Ref: name, Problem: "does not resolve to a complete image: " + err.Error() + " (import or pull it again, or bb rm it)"})
		}
		keep := map[v1.Hash]bool{}
		_ = s.mark(ctx, m, keep) // what it reached before an error counts
		for h := range keep {
			refs[h] = append(refs[h], name)
		}
	}
	return refs, nil
}

// checkBlobs hashes every blob, counts them and those no entry reaches
// (refs), and reports damaged ones, removing (with opts.Fix) those no
// entry reaches.
func (s *Store) checkBlobs(ctx context.Context, opts CheckOptions, refs map[v1.Hash][]string, rep *CheckReport, add func(Finding)) error {
	algs, err := os.ReadDir(filepath.Join(s.root, "blobs"))
	if err != nil {
		return fmt.Errorf("listing blobs: %w", err)
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(s.root, "blobs", a.Name()))
		if err != nil {
			return fmt.Errorf("listing blobs: %w", err)
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			p := filepath.Join(s.root, "blobs", a.Name(), e.Name())
			h := v1.Hash{Algorithm: a.Name(), Hex: e.Name()}
			if !e.Type().IsRegular() {
				add(Finding{Kind: FindingBlob, Path: p, Problem: "not a regular file; remove it by hand"})
				continue
			}
			rep.Blobs++
			got, n, err := hashFile(p, a.Name())
			rep.Bytes += n
			if err != nil {
				add(Finding{Kind: FindingBlob, Path: p, Ref: h.String(), Problem: err.Error()})
				continue
			}
			if len(refs[h]) == 0 {
				rep.Unreferenced++
			}
			if got != h.Hex {
				add(s.damagedBlob(ctx, opts, p, h, got, refs[h]))
			}
		}
	}
	return nil
}

// damagedBlob is the finding for blob h at p, whose content hashes to
// got: with opts.Fix it is removed unless an entry (tags) reaches it.
func (s *Store) damagedBlob(ctx context.Context, opts CheckOptions, p string, h v1.Hash, got string, tags []string) Finding {
	f := Finding{Kind: FindingBlob, Path: p, Ref: h.String(), Problem: fmt.Sprintf("content hashes to %s:%s: the blob is damaged", h.Algorithm, got)}
	if len(tags) > 0 && opts.Fix {
		// Reached only by artifacts attached to a snapshot (a converted
		// copy, a file index, metadata): they go with the blob, and the
		// snapshot stays.
		dropped, err := s.dropArtifactsReaching(ctx, h)
		if err == nil && dropped > 0 {
			if removed, err := s.removeIfUnreachable(ctx, h); err == nil && removed {
				f.Fix = fmt.Sprintf("remove it and the %d untagged artifacts that reach it (a converted copy is made again when needed)", dropped)
				f.Fixed = true
				return f
			}
		}
	}
	if len(tags) > 0 {
		sort.Strings(tags)
		f.Problem += fmt.Sprintf("; needed by %s: import or pull that snapshot again to repair it", strings.Join(tags, ", "))
		return f
	}
	f.Fix = "remove it (no tag reaches it)"
	if !opts.Fix {
		return f
	}
	removed, err := s.removeIfUnreachable(ctx, h)
	switch {
	case err != nil:
		f.Problem += "; removing it failed: " + err.Error()
	case removed:
		f.Fixed = true
	default:
		f.Problem += "; a tag reaches it now: left in place"
	}
	return f
}

// dropArtifactsReaching drops from index.json the entries that reach
// blob h, if every one of them is an untagged artifact of a snapshot
// (it has a subject annotation), and returns how many it dropped.
func (s *Store) dropArtifactsReaching(ctx context.Context, h v1.Hash) (int, error) {
	dropped := 0
	err := s.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		dropped = 0
		kept := make([]v1.Descriptor, 0, len(idx.Manifests))
		for _, m := range idx.Manifests {
			keep := map[v1.Hash]bool{}
			_ = s.mark(ctx, m, keep)
			if !keep[h] {
				kept = append(kept, m)
				continue
			}
			if m.Annotations[RefNameAnnotation] != "" || m.Annotations[SubjectAnnotation] == "" {
				dropped = 0
				return nil // a tag or an image of its own needs it: leave index.json as it is
			}
			dropped++
		}
		if dropped > 0 {
			idx.Manifests = kept
		}
		return nil
	})
	return dropped, err
}

// removeIfUnreachable removes blob h under the lock if no entry of
// index.json reaches it.
func (s *Store) removeIfUnreachable(ctx context.Context, h v1.Hash) (bool, error) {
	removed := false
	err := s.withLock(func() error {
		keep, err := s.reachable(ctx)
		if err != nil {
			return err
		}
		if keep[h] {
			return nil
		}
		if err := os.Remove(filepath.Join(s.root, "blobs", h.Algorithm, h.Hex)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed = true
		return nil
	})
	return removed, err
}

// CheckMode reports path if its mode grants anything to group or others
// (bb's directories are 0700, its files 0600 or 0400), tightening it when
// fix is set. It returns nil when the mode is right.
func CheckMode(path string, isDir, fix bool) *Finding {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	cur := fi.Mode().Perm()
	if cur&0o077 == 0 {
		return nil
	}
	want := cur &^ 0o077
	if isDir {
		want = DirMode
	}
	f := &Finding{Kind: FindingPerm, Path: path, Problem: fmt.Sprintf("mode %#o lets other users read it", cur), Fix: fmt.Sprintf("chmod %#o", want)}
	if fix {
		if err := os.Chmod(path, want); err != nil {
			f.Problem += "; chmod failed: " + err.Error()
		} else {
			f.Fixed = true
		}
	}
	return f
}

func hashFile(p, alg string) (string, int64, error) {
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return "", 0, fmt.Errorf("unknown digest algorithm %q", alg)
	}
	f, err := os.Open(p)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("reading: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
