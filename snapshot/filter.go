package snapshot

import (
	"archive/tar"
	"bufio"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"maps"
	"path"
	"strings"

	"github.com/bot-bottle/bb/fileindex"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/rootfs"
)

// DefaultExcludes are the paths of a running bottle that belong to the
// runtime, not to the bottle: pseudo filesystems, scratch space and the
// files the runtime bind-mounts. Directories among them are kept as empty
// directories so the snapshot has its mount points; files are dropped.
var DefaultExcludes = []string{
	"proc", "sys", "dev", "run", "tmp", "var/tmp",
	"etc/hosts", "etc/hostname", "etc/resolv.conf",
}

// scratchDirs are recreated root:root 1777 in every snapshot.
var scratchDirs = map[string]bool{"tmp": true, "var/tmp": true}

// FilterOptions configure Filter.
type FilterOptions struct {
	// Excludes are paths relative to the root ("proc", "home/node/.cache").
	// An excluded directory keeps its own entry but loses its contents.
	Excludes []string
	// Warn receives one line per dropped or rewritten entry.
	Warn func(msg string)
	// SpoolDir holds the data of a sparse file while its map is built
	// (a temporary file, removed at once); "" is os.TempDir().
	SpoolDir string
	// DenseSparse writes sparse files as plain regular files, holes as
	// zeros, for readers that do not know PAX sparse entries (smolvm's
	// in-guest unpacker, the Rust tar crate).
	DenseSparse bool
	// WhiteoutMark, when set, is the secret a Source put in the
	// WhiteoutMarkRecord PAX record of the whiteouts it made itself (the
	// deletions of an incremental snapshot): those stay whiteouts. Every
	// other entry whose path has a component starting with ".wh." is a
	// file of the bottle that a layer cannot carry (see layer.Reserved):
	// it is left out and counted in FilterStats.Reserved.
	WhiteoutMark string
}

// WhiteoutMarkRecord is the PAX record that marks the whiteouts a Source
// made (see FilterOptions.WhiteoutMark). Filter drops it: no layer holds it.
const WhiteoutMarkRecord = "BB.whiteout"

// MaxReservedPaths bounds FilterStats.ReservedPaths (the file index's
// bound: an incremental commit adds the listing's reserved paths).
const MaxReservedPaths = fileindex.MaxReservedPaths

// FilterStats counts what Filter passed and dropped.
type FilterStats struct {
	Entries  int64
	Dropped  int64
	TarBytes int64
	// Reserved counts the bottle's entries left out because their names
	// are reserved for whiteouts (".wh.NAME", and what is below a
	// directory of that name); ReservedPaths are the first
	// MaxReservedPaths of them. Those the filter met are part of Dropped;
	// a snapshot's Result adds those its listing left out (an incremental
	// commit does not stream unchanged ones).
	Reserved      int64
	ReservedPaths []string `json:",omitempty"`
}

// addReserved counts a path left out for its reserved name.
func (st *FilterStats) addReserved(n int64, paths ...string) {
	st.Reserved += n
	for _, p := range paths {
		if len(st.ReservedPaths) < MaxReservedPaths {
			st.ReservedPaths = append(st.ReservedPaths, p)
		}
	}
}

// EntryError is an entry of the tar stream that bb refuses.
type EntryError struct {
	Name   string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("refusing tar entry %q: %s", e.Name, e.Reason)
}

// Filter reads an untrusted tar stream of a root filesystem and writes a
// normalised one to w:
//   - names are made relative ("./etc/passwd", "/etc/passwd" -> "etc/passwd"),
//     the root entry is dropped, and names with ".." are refused;
//   - excluded paths lose their contents (see FilterOptions.Excludes);
//   - a path below a symlink of the same stream (or below a hard link
//     to one, which is a symlink too) is refused: it would escape on
//     extraction; a hard link to a path the stream has not carried
//     before is dropped;
//   - owners stay numeric (user and group names are dropped), access and
//     change times are dropped and mtimes rounded to seconds, so an
//     unchanged tree gives the same bytes; xattrs (SCHILY.xattr.*) are kept.
//   - entries named ".wh.NAME" (and everything below a directory of that
//     name) are left out and counted: in a layer they would be whiteouts
//     hiding NAME. Only the whiteouts the Source itself made and marked
//     (FilterOptions.WhiteoutMark) stay.
//   - a file the input marks sparse keeps its holes (aligned 4 KiB zero
//     blocks) as a PAX sparse 1.0 entry; its data is spooled to a
//     temporary file of FilterOptions.SpoolDir meanwhile.
//
// Memory grows by 8 bytes per entry name at most, never by a header's
// declared size. Filter reads src to EOF.
func Filter(src io.Reader, w io.Writer, opts FilterOptions) (FilterStats, error) {
	f := &filter{
		opts:     opts,
		excludes: map[string]bool{},
		seen:     map[uint64]struct{}{},
		symlinks: map[uint64]struct{}{},
		xattrs:   map[uint64]map[string]string{},
		seed:     maphash.MakeSeed(),
	}
	for _, e := range opts.Excludes {
		if c := cleanName(e); c != "" {
			f.excludes[c] = true
		}
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	cw := &iox.CountingWriter{W: bw}
	tw := tar.NewWriter(cw)
	tr := tar.NewReader(bufio.NewReaderSize(src, 256<<10))
	var st FilterStats
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("reading tar stream: %w", err)
		}
		sparse := !opts.DenseSparse && isSparse(hdr)
		name := cleanName(hdr.Name)
		// A reserved name is left out and counted only where entry would
		// take it: a path with ".." still fails, an excluded one is not
		// reported.
		if drop, bottle := f.reserved(hdr, name); drop && !rootfs.HasDotDot(hdr.Name) && !f.excluded(name, hdr.Typeflag == tar.TypeDir) {
			st.Dropped++
			if bottle {
				st.addReserved(1, name)
			}
			continue
		}
		out, keep, err := f.entry(hdr, name)
		if err != nil {
			return st, err
		}
		if !keep {
			st.Dropped++
			continue
		}
		if sparse && out.Typeflag == tar.TypeReg && out.Size > 0 {
			if err := tw.Flush(); err != nil {
				return st, err
			}
			if _, err := copySparse(cw, out, tr, opts.SpoolDir); err != nil {
				return st, err
			}
			st.Entries++
			continue
		}
		if err := tw.WriteHeader(out); err != nil {
			return st, fmt.Errorf("writing tar entry %q: %w", out.Name, err)
		}
		if out.Typeflag == tar.TypeReg && out.Size > 0 {
			if _, err := io.Copy(tw, tr); err != nil {
				return st, fmt.Errorf("copying %q: %w", out.Name, err)
			}
		}
		st.Entries++
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	st.TarBytes = cw.Count()
	// Drain padding so the producer is not killed by a closed pipe.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return st, fmt.Errorf("reading tar stream: %w", err)
	}
	return st, nil
}

type filter struct {
	opts     FilterOptions
	excludes map[string]bool
	seen     map[uint64]struct{}
	symlinks map[uint64]struct{}
	// xattrs are the xattr records of regular files, for the hard links
	// to them (see linkXattrs); xattrBytes bounds what they hold.
	xattrs     map[uint64]map[string]string
	xattrBytes int
	seed       maphash.Seed
}

// maxLinkXattrBytes bounds the xattrs the filter keeps for hard links.
const maxLinkXattrBytes = 8 << 20

func (f *filter) hash(s string) uint64 { return maphash.String(f.seed, s) }

func (f *filter) warn(format string, args ...any) {
	if f.opts.Warn != nil {
		f.opts.Warn(fmt.Sprintf(format, args...))
	}
}

// excluded reports whether name is strictly below an excluded path, or is
// an excluded path that is not a directory.
func (f *filter) excluded(name string, isDir bool) bool {
	if f.excludes[name] && !isDir {
		return true
	}
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if f.excludes[p] {
			return true
		}
	}
	return false
}

// reserved says whether h is left out for its name, reserved in a layer
// for whiteouts, and whether it is a file of the bottle (counted) rather
// than a whiteout the Source made. A whiteout the Source made carries
// the mark; it is kept if it is one that can apply (a regular file, its
// directory's path clean of reserved names, hiding a name that is not
// reserved itself, which no layer holds).
func (f *filter) reserved(h *tar.Header, name string) (drop, bottle bool) {
	if !layer.Reserved(name) {
		return false, false
	}
	mark, ok := h.PAXRecords[WhiteoutMarkRecord]
	if !ok || f.opts.WhiteoutMark == "" || subtle.ConstantTimeCompare([]byte(mark), []byte(f.opts.WhiteoutMark)) != 1 {
		return true, true
	}
	dir, base := path.Split(name)
	gone := strings.TrimPrefix(base, layer.WhiteoutPrefix)
	switch {
	case h.Typeflag != tar.TypeReg || layer.Reserved(dir) || gone == "":
		return true, false
	case base == layer.OpaqueWhiteout:
		return false, false
	}
	return layer.Reserved(gone), false
}

// entry checks and rewrites h; name is cleanName(h.Name).
func (f *filter) entry(h *tar.Header, name string) (*tar.Header, bool, error) {
	if rootfs.HasDotDot(h.Name) {
		return nil, false, &EntryError{Name: h.Name, Reason: `path contains ".."`}
	}
	if name == "" {
		return nil, false, nil // the root itself
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	case tar.TypeGNUSparse:
		// A sparse file (GNU tar --sparse, old GNU format): Filter writes
		// it as a PAX sparse 1.0 regular file (see copySparse).
		h.Typeflag = tar.TypeReg
	default:
		f.warn("skipping %q: unsupported tar entry type %q", name, h.Typeflag)
		return nil, false, nil
	}
	isDir := h.Typeflag == tar.TypeDir
	if f.excluded(name, isDir) {
		return nil, false, nil
	}
	for p := path.Dir(name); p != "."; p = path.Dir(p) {
		if _, ok := f.symlinks[f.hash(p)]; ok {
			return nil, false, &EntryError{Name: h.Name, Reason: fmt.Sprintf("its parent %q is a symlink: extracting it would write outside the root", p)}
		}
	}
	out := &tar.Header{
		Typeflag: h.Typeflag,
		Name:     name,
		Mode:     h.Mode,
		Uid:      h.Uid,
		Gid:      h.Gid,
		Size:     h.Size,
		ModTime:  h.ModTime,
		Devmajor: h.Devmajor,
		Devminor: h.Devminor,
	}
	if isDir {
		out.Name += "/"
		out.Size = 0
	}
	if scratchDirs[name] && isDir {
		out.Mode, out.Uid, out.Gid = 0o1777, 0, 0
	}
	switch h.Typeflag {
	case tar.TypeSymlink:
		out.Linkname = h.Linkname
		out.Size = 0
		f.symlinks[f.hash(name)] = struct{}{}
	case tar.TypeLink:
		if rootfs.HasDotDot(h.Linkname) {
			return nil, false, &EntryError{Name: h.Name, Reason: fmt.Sprintf("hard link target %q contains \"..\"", h.Linkname)}
		}
		target := cleanName(h.Linkname)
		if _, ok := f.seen[f.hash(target)]; !ok || target == "" {
			f.warn("skipping hard link %q: its target %q is not in the snapshot", name, h.Linkname)
			return nil, false, nil
		}
		out.Linkname = target
		out.Size = 0
		// A hard link to a symlink is a symlink: nothing may go below it.
		if _, ok := f.symlinks[f.hash(target)]; ok {
			f.symlinks[f.hash(name)] = struct{}{}
		}
	case tar.TypeReg:
	default:
		out.Size = 0
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, "SCHILY.xattr.") {
			if out.PAXRecords == nil {
				out.PAXRecords = map[string]string{}
			}
			out.PAXRecords[k] = v
		}
	}
	f.linkXattrs(name, target(h, out), out)
	if !isDir {
		f.seen[f.hash(name)] = struct{}{}
	}
	return out, true, nil
}

func target(h, out *tar.Header) string {
	if h.Typeflag == tar.TypeLink {
		return out.Linkname
	}
	return ""
}

// linkXattrs gives a hard link the xattrs of the file it links to. GNU
// tar writes them only on the file's own entry, and a runtime that
// applies owner and mode to the link entry (dockerd does) clears the
// inode's security.capability with that chown; repeated on the link's
// header, the xattrs are set again after it. Regular files' xattrs are
// remembered up to maxLinkXattrBytes in all; past that a link keeps
// only what its own header carries.
func (f *filter) linkXattrs(name, linkTarget string, out *tar.Header) {
	h := f.hash(name)
	if len(f.xattrs) > 0 {
		delete(f.xattrs, h) // a later entry of the same name replaces it
	}
	switch out.Typeflag {
	case tar.TypeReg:
		if len(out.PAXRecords) == 0 || f.xattrBytes >= maxLinkXattrBytes {
			return
		}
		for k, v := range out.PAXRecords {
			f.xattrBytes += len(k) + len(v)
		}
		f.xattrs[h] = out.PAXRecords
	case tar.TypeLink:
		x, ok := f.xattrs[f.hash(linkTarget)]
		if !ok {
			return
		}
		if len(out.PAXRecords) == 0 {
			out.PAXRecords = maps.Clone(x)
		}
		f.xattrs[h] = out.PAXRecords
	}
}

// cleanName makes a tar name relative and clean: "./a/b/", "/a/b" -> "a/b";
// the root gives "".
func cleanName(n string) string {
	c := path.Clean("/" + n)
	return strings.TrimPrefix(c, "/")
}
