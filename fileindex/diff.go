package fileindex

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"path"
	"slices"

	"github.com/bot-bottle/bb/oci/layer"
)

// Kind says how an entry differs between two listings.
type Kind byte

// Kinds of change.
const (
	Added   Kind = 'A'
	Changed Kind = 'M'
	Deleted Kind = 'D'
)

func (k Kind) String() string {
	switch k {
	case Added:
		return "added"
	case Changed:
		return "changed"
	case Deleted:
		return "deleted"
	}
	return "?"
}

// Change is one path that differs.
type Change struct {
	Kind Kind
	Path string
	// Type is the entry's type (the new one, for a deleted entry the old).
	Type byte
	// Size is the new size (the old one for a deleted entry).
	Size int64
	// Replaced: a directory whose inode changed (removed and made again)
	// or an entry whose type changed.
	Replaced bool
}

// Plan is what a commit streams to go from the older listing to the
// newer: the paths to archive, in order, and the whiteouts.
type Plan struct {
	// Paths are the entries to archive (without recursion), parents
	// before children; hard links to a changed file follow it, and so
	// does the parent directory of every change (extracting the change
	// touches its mtime).
	Paths []string
	// Whiteouts are paths deleted (or replaced by a non-directory) since
	// the older listing, topmost only: deleting a directory deletes what
	// is below it.
	Whiteouts []string
	// Opaque are directories made again since the older listing: what the
	// older snapshot had in them is hidden (an opaque whiteout) and what
	// they hold now is in Paths.
	Opaque []string
	// Entries counts the newer listing.
	Entries                 int
	Added, Changed, Deleted int
	// Renumbered counts entries of both listings whose inode differs:
	// nearly all of them after the bottle was booted again from a
	// snapshot.
	Renumbered int
	// Bytes is the size of the regular files in Paths.
	Bytes int64
	// Reserved counts the newer listing's entries whose path has a
	// component starting with ".wh." (layer.Reserved): a layer cannot
	// carry them (they would be whiteouts), so Diff leaves them out of
	// both listings, as the snapshots leave them out. ReservedPaths are
	// the first MaxReservedPaths of them.
	Reserved      int
	ReservedPaths []string
}

// MaxReservedPaths bounds Plan.ReservedPaths.
const MaxReservedPaths = 10

// Options tune Diff.
type Options struct {
	// Report, if set, receives every change (deleted entries are all
	// reported, not only the topmost).
	Report func(Change)
	// NoPaths leaves Plan.Paths, Whiteouts and Opaque empty (for a report).
	NoPaths bool
	// Quick compares only type, mode, owner, size, mtime and link target
	// (rsync's quick check), for listings of different instances of a
	// bottle (before and after a resume), whose inodes and ctimes all
	// differ. It misses rewrites that keep size and mtime.
	Quick bool
	// MaxMemory bounds what Diff holds: the older listing's entries (32
	// bytes each, and under 2 of lookup table) and the paths of the plan. A listing comes from the
	// bottle, so its size is the bottle's word. Past the bound Diff reads
	// on, counting only, and returns a *TooLargeError with the counts.
	// 0 means DefaultMaxMemory.
	MaxMemory int64
}

// DefaultMaxMemory is Options.MaxMemory when it is 0: 7.5 million entries of
// an older listing, or a few million changed paths. A change that large
// costs a full snapshot about as much as an increment.
const DefaultMaxMemory = 256 << 20

// TooLargeError is a comparison that would hold more than
// Options.MaxMemory.
type TooLargeError struct {
	// Max is the bound; What says what reached it.
	Max  int64
	What string
}

func (e *TooLargeError) Error() string {
	size := fmt.Sprintf("%d bytes", e.Max)
	if e.Max >= 1<<20 {
		size = fmt.Sprintf("%d MiB", e.Max>>20)
	}
	return fmt.Sprintf("comparing the listings would hold more than %s: %s", size, e.What)
}

// oldEntrySize is what load holds per entry of the older listing.
const oldEntrySize = 32

// pathCost is what the plan holds for a path: its bytes and about what a
// string header and a map or slice slot take.
func pathCost(p string) int64 { return int64(len(p)) + 48 }

// oldEntry is what Diff keeps in memory of one entry of the older listing.
type oldEntry struct {
	key   uint64 // hash of the path
	attr  uint64 // hash of type, mode, owner, size, times, inode, link
	ino   uint64
	typ   byte
	racy  bool
	state byte
}

// states of an oldEntry after the newer listing was read
const (
	unseen   = iota
	kept     // present in both, same directory or same kind
	replaced // present in both, but a directory was made again or the type changed
)

// Diff compares the older listing (opened twice by old) with the newer
// one (cur) and plans the layer that turns the first into the second.
// Entries whose ctime was within RacyWindow of the older listing's start
// count as changed.
func Diff(ctx context.Context, old func() (io.ReadCloser, error), cur io.Reader, opts Options) (*Plan, error) {
	seed := maphash.MakeSeed()
	d := &differ{seed: seed, opts: opts, plan: &Plan{}, budget: opts.MaxMemory}
	if d.budget <= 0 {
		d.budget = DefaultMaxMemory
	}
	if err := d.load(ctx, old); err != nil {
		return nil, err
	}
	if err := d.scan(ctx, cur); err != nil {
		return nil, err
	}
	if d.over != nil {
		return d.plan, d.over
	}
	if err := d.deletions(ctx, old); err != nil {
		return nil, err
	}
	if d.over != nil {
		return d.plan, d.over
	}
	return d.plan, nil
}

// spend takes n bytes of the budget. Past it, the plan is dropped, the
// comparison goes on counting only, and Diff returns d.over.
func (d *differ) spend(n int64, what string) bool {
	if d.over != nil {
		return false
	}
	d.used += n
	if d.used <= d.budget {
		return true
	}
	d.over = &TooLargeError{Max: d.budget, What: what}
	d.opts.NoPaths, d.opts.Report = true, nil
	d.plan.Paths, d.plan.Whiteouts, d.plan.Opaque = nil, nil, nil
	return false
}

type differ struct {
	seed maphash.Seed
	opts Options
	plan *Plan
	olds []oldEntry
	// buckets[b] is the first of olds whose key>>shift is b (index).
	buckets []uint32
	shift   uint
	// seen counts the olds the newer listing named: when it names them
	// all, nothing was deleted.
	seen int
	// listed is when the older listing started, minus RacyWindow.
	racyFrom Time
	// budget bounds used (Options.MaxMemory); over is set once it is
	// passed.
	budget, used int64
	over         *TooLargeError
}

func (d *differ) key(p string) uint64 { return maphash.String(d.seed, p) }

func (d *differ) attr(e *Entry) uint64 { return d.attrLink(e, []byte(e.Link)) }

// attrLink hashes e's attributes with link as its link target.
func (d *differ) attrLink(e *Entry, link []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(d.seed)
	var b [8 * 9]byte
	b[0] = e.Type
	binary.LittleEndian.PutUint32(b[1:], e.Mode)
	binary.LittleEndian.PutUint32(b[5:], e.UID)
	binary.LittleEndian.PutUint32(b[9:], e.GID)
	binary.LittleEndian.PutUint64(b[13:], uint64(e.Size))
	binary.LittleEndian.PutUint64(b[21:], uint64(e.Mtime.Sec))
	binary.LittleEndian.PutUint64(b[29:], uint64(e.Mtime.Nsec))
	if !d.opts.Quick {
		binary.LittleEndian.PutUint64(b[37:], uint64(e.Ctime.Sec))
		binary.LittleEndian.PutUint64(b[45:], uint64(e.Ctime.Nsec))
		binary.LittleEndian.PutUint64(b[53:], e.Ino)
	}
	h.Write(b[:61])
	h.Write(link)
	return h.Sum64()
}

func (d *differ) find(p string) *oldEntry { return d.findKey(d.key(p)) }

// bucketBits is the size of the lookup table of n old entries (2^bits
// buckets, at most n/2: under 2 bytes per entry).
func bucketBits(n int) int {
	bits := 0
	for 2<<(bits+1) <= n {
		bits++
	}
	return bits
}

// index sorts olds by key and builds their lookup table: for each value of a
// key's top bits, where its run begins. The keys are hashes, spread
// evenly over uint64, so a bucket holds two to four entries and a lookup
// touches two places in memory (an interpolation search touched a dozen,
// each a cache miss once the table outgrows the cache).
func (d *differ) index(bits int) {
	slices.SortFunc(d.olds, func(a, b oldEntry) int { return cmp.Compare(a.key, b.key) })
	d.shift = uint(64 - bits) // 64: every key in bucket 0
	d.buckets = make([]uint32, (1<<bits)+1)
	j := 0
	for b := range d.buckets {
		for j < len(d.olds) && d.olds[j].key>>d.shift < uint64(b) {
			j++
		}
		d.buckets[b] = uint32(j)
	}
}

// findKey looks k up in the sorted olds, through the lookup table.
func (d *differ) findKey(k uint64) *oldEntry {
	if len(d.buckets) == 0 {
		return nil
	}
	b := k >> d.shift
	for i := d.buckets[b]; i < d.buckets[b+1]; i++ {
		switch o := &d.olds[i]; {
		case o.key == k:
			return o
		case o.key > k:
			return nil
		}
	}
	return nil
}

// openPrevious opens the previous file index for one pass; close it
// when done.
func openPrevious(open func() (io.ReadCloser, error)) (*Reader, io.Closer, error) {
	rc, err := open()
	if err != nil {
		return nil, nil, fmt.Errorf("opening the previous file index: %w", err)
	}
	r, err := NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, nil, fmt.Errorf("previous file index: %w", err)
	}
	return r, rc, nil
}

func (d *differ) load(ctx context.Context, open func() (io.ReadCloser, error)) error {
	r, rc, err := openPrevious(open)
	if err != nil {
		return err
	}
	defer rc.Close()
	rw := RacyWindow
	d.racyFrom = FromTime(r.Listed.Go().Add(-rw))
	// Sized exactly: growing by append would hold the old and the new
	// array at once (a million entries: 32 MB each).
	n, err := countRecords(open)
	if err != nil {
		return err
	}
	bits := bucketBits(n)
	if !d.spend(int64(n)*oldEntrySize+(int64(1)<<bits+1)*4, fmt.Sprintf("the previous snapshot's file index lists %d entries", n)) {
		return nil
	}
	d.olds = make([]oldEntry, 0, n)
	var e Entry
	for {
		p, link, err := r.nextBytes(&e, true)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("previous file index: %w", err)
		}
		if len(d.olds)%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if layer.ReservedBytes(p) {
			continue // never in a snapshot; not found, so not deleted either
		}
		o := oldEntry{key: maphash.Bytes(d.seed, p), attr: d.attrLink(&e, link), ino: e.Ino, typ: e.Type, racy: !e.Ctime.Before(d.racyFrom)}
		if d.opts.Quick {
			o.ino, o.racy = 0, false
		}
		d.olds = append(d.olds, o)
	}
	d.olds = slices.Clip(d.olds)
	d.index(bits)
	return nil
}

// countRecords counts the records of a listing (an upper bound of its
// entries: the root is one of them).
func countRecords(open func() (io.ReadCloser, error)) (int, error) {
	r, rc, err := openPrevious(open)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n := 0
	for {
		if err := r.skip(); errors.Is(err, io.EOF) {
			return n, nil
		} else if err != nil {
			return 0, fmt.Errorf("previous file index: %w", err)
		}
		n++
	}
}

// scan reads the newer listing: added and changed entries go to Paths.
func (d *differ) scan(ctx context.Context, cur io.Reader) error {
	r, err := NewReader(cur)
	if err != nil {
		return err
	}
	sc := &scanner{links: map[uint64]*linkGroup{}, inPaths: map[string]bool{}, dirs: map[string]bool{}}
	var e Entry
	for {
		if err := r.Next(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("file listing: %w", err)
		}
		if layer.Reserved(e.Path) {
			d.plan.Reserved++
			if len(d.plan.ReservedPaths) < MaxReservedPaths {
				d.plan.ReservedPaths = append(d.plan.ReservedPaths, e.Path)
			}
			continue
		}
		d.plan.Entries++
		if d.plan.Entries%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if d.over != nil {
			continue
		}
		kind, repl := d.classify(sc, &e)
		g := d.group(sc, &e)
		if kind != 0 {
			d.emit(sc, &e, kind, repl, g)
		}
	}
	// A changed file's other hard links go with it, so the layer keeps
	// them one inode (tar archives the later paths as links to the first).
	if !d.opts.NoPaths {
		d.plan.Paths = append(d.plan.Paths, sc.otherLinks()...)
	}
	return nil
}

// scanner is the state of scan between entries of the newer listing.
type scanner struct {
	links    map[uint64]*linkGroup // hard-linked files by inode
	inPaths  map[string]bool       // hard-linked paths already in Paths
	reopened []string              // directories made again: everything below them is new
	dirs     map[string]bool       // directories in Paths
}

// linkGroup is the paths of one hard-linked file.
type linkGroup struct {
	paths   []string
	changed bool
}

// classify compares e with the older listing's entry of its path (marking
// that one seen) and returns how it changed (0: not at all); repl is set
// when a directory was made again or the type changed. A directory made
// again goes to Opaque, another replaced directory to Whiteouts.
func (d *differ) classify(sc *scanner, e *Entry) (kind Kind, repl bool) {
	for len(sc.reopened) > 0 && !under(e.Path, sc.reopened[len(sc.reopened)-1]) {
		sc.reopened = sc.reopened[:len(sc.reopened)-1]
	}
	o := d.find(e.Path)
	ino := e.Ino
	if d.opts.Quick {
		ino = 0
	}
	if o != nil && o.ino != ino {
		d.plan.Renumbered++
	}
	if o != nil && o.state == unseen {
		d.seen++
	}
	switch {
	case o == nil:
		kind = Added
	case len(sc.reopened) > 0:
		kind = Changed
		o.state = kept
	case o.typ != e.Type || (e.IsDir() && o.ino != ino):
		kind, repl = Changed, true
		o.state = replaced
	default:
		o.state = kept
		if o.racy || o.attr != d.attr(e) {
			kind = Changed
		}
	}
	if e.IsDir() && repl && o.typ == 'd' {
		if d.spend(pathCost(e.Path), "directories made again") {
			sc.reopened = append(sc.reopened, e.Path)
			if !d.opts.NoPaths {
				d.plan.Opaque = append(d.plan.Opaque, e.Path)
			}
		}
	} else if repl && o.typ == 'd' && !d.opts.NoPaths && d.spend(pathCost(e.Path), "replaced directories") {
		d.plan.Whiteouts = append(d.plan.Whiteouts, e.Path)
	}
	return kind, repl
}

// group adds a hard-linked file to the group of its inode (nil for
// other entries).
func (d *differ) group(sc *scanner, e *Entry) *linkGroup {
	if e.Nlink <= 1 || e.IsDir() {
		return nil
	}
	if !d.spend(pathCost(e.Path), "hard-linked paths") {
		return nil
	}
	g := sc.links[e.Ino]
	if g == nil {
		g = &linkGroup{}
		sc.links[e.Ino] = g
	}
	g.paths = append(g.paths, e.Path)
	return g
}

// emit counts and reports a change and puts its path, after its parent
// directory's, in Paths.
func (d *differ) emit(sc *scanner, e *Entry, kind Kind, repl bool, g *linkGroup) {
	p := d.plan
	if kind == Added {
		p.Added++
	} else {
		p.Changed++
	}
	if e.Type == 'f' {
		p.Bytes += min(e.Size, math.MaxInt64-p.Bytes) // listed sizes are the bottle's word
	}
	if d.opts.Report != nil {
		d.opts.Report(Change{Kind: kind, Path: e.Path, Type: e.Type, Size: e.Size, Replaced: repl})
	}
	if d.opts.NoPaths || !d.spend(2*pathCost(e.Path), "changed paths") {
		return
	}
	// The parent goes too: extracting the entry changes the parent's
	// mtime, which the layer must set back.
	if parent := path.Dir(e.Path); parent != "." && !sc.dirs[parent] {
		sc.dirs[parent] = true
		p.Paths = append(p.Paths, parent)
	}
	if e.IsDir() {
		sc.dirs[e.Path] = true
	}
	p.Paths = append(p.Paths, e.Path)
	if g != nil {
		g.changed = true
		sc.inPaths[e.Path] = true
	}
}

// otherLinks returns, sorted, the paths of changed hard-linked files
// that are not in Paths yet.
func (sc *scanner) otherLinks() []string {
	var extra []string
	for _, g := range sc.links {
		if !g.changed {
			continue
		}
		for _, q := range g.paths {
			if !sc.inPaths[q] {
				extra = append(extra, q)
			}
		}
	}
	slices.Sort(extra)
	return extra
}

// deletions reads the older listing again: entries the newer one lacks
// (none, and no read, when the newer one named every one of them).
func (d *differ) deletions(ctx context.Context, open func() (io.ReadCloser, error)) error {
	if d.seen == len(d.olds) {
		return nil
	}
	r, rc, err := openPrevious(open)
	if err != nil {
		return err
	}
	defer rc.Close()
	opaque := map[string]bool{}
	for _, o := range d.plan.Opaque {
		opaque[o] = true
	}
	var e Entry
	n := 0
	for {
		// Only a deleted entry's record is parsed: the rest were in the
		// first pass (load), which checked them.
		p, _, err := r.nextBytes(&e, false)
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("previous file index: %w", err)
		}
		n++
		if n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		o := d.findKey(maphash.Bytes(d.seed, p))
		if o == nil || o.state != unseen {
			continue
		}
		if err := parseHead(r.head, &e); err != nil {
			return fmt.Errorf("previous file index record %d: %w", n, err)
		}
		e.Path = string(p)
		d.plan.Deleted++
		if d.opts.Report != nil {
			d.opts.Report(Change{Kind: Deleted, Path: e.Path, Type: e.Type, Size: e.Size})
		}
		if d.opts.NoPaths {
			continue
		}
		if !d.spend(pathCost(e.Path), "deleted paths") {
			continue
		}
		// Topmost only: a whiteout when the parent is still there as the
		// same directory; a deleted, re-made or replaced parent covers it.
		parent := path.Dir(e.Path)
		if parent == "." {
			d.plan.Whiteouts = append(d.plan.Whiteouts, e.Path)
			continue
		}
		if po := d.find(parent); po != nil && po.state == kept && po.typ == 'd' && !belowAny(parent, opaque) {
			d.plan.Whiteouts = append(d.plan.Whiteouts, e.Path)
		}
	}
	return nil
}

func under(p, dir string) bool {
	return len(p) > len(dir) && p[len(dir)] == '/' && p[:len(dir)] == dir
}

// belowAny reports whether dir is one of set or below one of them.
func belowAny(dir string, set map[string]bool) bool {
	if len(set) == 0 {
		return false
	}
	for p := dir; p != "."; p = path.Dir(p) {
		if set[p] {
			return true
		}
	}
	return false
}
