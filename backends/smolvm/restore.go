package smolvm

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/pack"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
)

// What smolvm 1.9.3's pack loses, and bb restores after it creates a
// machine from a pack (internal/testing/standin/README.md cites the source):
// pack create unpacks the image's layer in the guest with the Rust tar
// crate without unpacking xattrs, and sets each entry's parent directory
// to exactly 0755 before it unpacks the entry
// (crates/smolvm-oci-layer/src/lib.rs extract_oci_layer). So every xattr
// (security.capability included) is gone, and every directory that has
// children has mode 0755 whatever its mode was (0700, setgid, sticky).

// xattrPrefix starts the PAX records that carry xattrs.
const xattrPrefix = "SCHILY.xattr."

// RestoreStats counts what a restore tar holds.
type RestoreStats struct {
	Dirs    int   // directory headers (mode, owner, mtime, xattrs)
	Entries int   // other entries with xattrs (and their hard links)
	Bytes   int64 // file content the tar carries
}

// Empty reports whether there is nothing to restore.
func (s RestoreStats) Empty() bool { return s.Dirs == 0 && s.Entries == 0 }

// WriteRestore writes to w a tar that GNU tar extracts over the root of
// a machine unpacked from the snapshot's layer (read from r, an
// uncompressed tar) to put back what packing lost: the header of every
// directory that has children and a mode other than 0755, or xattrs
// (GNU tar's default --overwrite-dir sets an existing directory's mode,
// owner and mtime from its header without touching its contents); and
// every other entry that has xattrs, with its content for regular files
// (GNU tar has no metadata-only extraction) followed by its hard links,
// so links stay links.
func WriteRestore(ctx context.Context, r io.Reader, w io.Writer) (RestoreStats, error) {
	var st RestoreStats
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	type dir struct {
		hdr      *tar.Header
		children bool
	}
	var dirs []*dir
	byName := map[string]*dir{}
	withXattrs := map[string]bool{} // regular files written, for their hard links
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("reading the snapshot's layer: %w", err)
		}
		name := cleanName(hdr.Name)
		if name == "" {
			continue
		}
		if d := byName[path.Dir(name)]; d != nil {
			d.children = true
		}
		hasX := hasXattrs(hdr)
		switch hdr.Typeflag {
		case tar.TypeDir:
			d := &dir{hdr: copyHeader(hdr, name)}
			dirs = append(dirs, d)
			byName[name] = d
		case tar.TypeLink:
			if withXattrs[cleanName(hdr.Linkname)] {
				h := copyHeader(hdr, name)
				h.Linkname = cleanName(hdr.Linkname)
				if err := tw.WriteHeader(h); err != nil {
					return st, err
				}
				st.Entries++
			}
		case tar.TypeReg:
			if !hasX {
				continue
			}
			h := copyHeader(hdr, name)
			h.Typeflag = tar.TypeReg
			if err := tw.WriteHeader(h); err != nil {
				return st, err
			}
			n, err := io.Copy(tw, tr)
			if err != nil {
				return st, fmt.Errorf("copying %s from the snapshot's layer: %w", name, err)
			}
			st.Bytes += n
			st.Entries++
			withXattrs[name] = true
		default:
			if !hasX {
				continue
			}
			if err := tw.WriteHeader(copyHeader(hdr, name)); err != nil {
				return st, err
			}
			st.Entries++
		}
	}
	// Directories last: their modes (0700 among them) apply after the
	// files above were written, as GNU tar would delay them anyway.
	for _, d := range dirs {
		if !(d.children && d.hdr.Mode&0o7777 != 0o755) && !hasXattrs(d.hdr) {
			continue
		}
		if err := tw.WriteHeader(d.hdr); err != nil {
			return st, err
		}
		st.Dirs++
	}
	return st, tw.Close()
}

func hasXattrs(h *tar.Header) bool {
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			return true
		}
	}
	return false
}

// copyHeader keeps what GNU tar restores: type, name, mode, owner,
// times, size, link target, device numbers and the xattr records.
func copyHeader(h *tar.Header, name string) *tar.Header {
	c := &tar.Header{
		Typeflag: h.Typeflag, Name: name, Linkname: h.Linkname, Size: h.Size, Mode: h.Mode,
		Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime, Devmajor: h.Devmajor, Devminor: h.Devminor,
		Format: tar.FormatPAX,
	}
	if h.Typeflag == tar.TypeDir {
		c.Name += "/"
		c.Size = 0
	}
	if h.Typeflag != tar.TypeReg {
		c.Size = 0
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, xattrPrefix) {
			if c.PAXRecords == nil {
				c.PAXRecords = map[string]string{}
			}
			c.PAXRecords[k] = v
		}
	}
	return c
}

// cleanName makes a tar name relative and clean ("./a/b/" -> "a/b"); ""
// for the root.
func cleanName(n string) string {
	n = path.Clean("/" + n)
	if n == "/" {
		return ""
	}
	return n[1:]
}

// RestoreArgs is the GNU tar that applies a restore tar in the guest.
// As root, GNU tar restores modes with their setgid and sticky bits,
// numeric owners and (with --xattrs-include=*) every xattr namespace,
// security.capability included.
var RestoreArgs = []string{"tar", "--extract", "--xattrs", "--xattrs-include=*", "--numeric-owner",
	"--same-permissions", "--same-owner", "--file=-", "--directory=/"}

// snapshotLayer opens the single layer of a smolvm snapshot, uncompressed,
// or the merge of its layers (pack.Merged) if it is a chain.
func snapshotLayer(ctx context.Context, s *oci.Store, manifest v1.Hash) (io.ReadCloser, error) {
	img, err := s.Image(ctx, manifest)
	if err != nil {
		return nil, err
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	if len(layers) != 1 {
		// An incremental chain: its pack was made from the merged layers.
		rc, _, err := pack.Merged(ctx, s, manifest)
		return rc, err
	}
	mt, err := layers[0].MediaType()
	if err != nil || !strings.HasSuffix(string(mt), "gzip") {
		return layers[0].Uncompressed()
	}
	// gzip on every core: a resume reads the whole layer.
	rc, err := layers[0].Compressed()
	if err != nil {
		return nil, err
	}
	zr, err := pgzip.NewReader(rc)
	if err != nil {
		rc.Close()
		return nil, err
	}
	return &zipReader{Reader: zr, c: rc}, nil
}

type zipReader struct {
	*pgzip.Reader
	c io.Closer
}

func (z *zipReader) Close() error {
	z.Reader.Close()
	return z.c.Close()
}

// restoreTee builds the restore tar of a chain from the flattened tar
// pack.Pack hands out while it makes it (pack.Options.Tee), so that the
// commit does not decompress and merge the chain a second time.
type restoreTee struct {
	pw   *io.PipeWriter
	done chan error
	tmp  string
}

// startRestoreTee sets opts.Tee when manifest is a chain (Pack flattens
// it) and returns the tee that writes its restore tar; nil, leaving opts
// alone, for a single layer or when the tee cannot start (the caller
// then reads the snapshot with buildRestore).
func startRestoreTee(ctx context.Context, s *oci.Store, manifest v1.Hash, path string, opts *pack.Options) *restoreTee {
	img, err := s.Image(ctx, manifest)
	if err != nil {
		return nil
	}
	if ls, err := img.Layers(); err != nil || len(ls) < 2 {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil
	}
	t := &restoreTee{done: make(chan error, 1), tmp: path + ".tee"}
	f, err := os.OpenFile(t.tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil
	}
	pr, pw := io.Pipe()
	t.pw = pw
	go func() {
		bw := bufio.NewWriterSize(f, 1<<20)
		_, err := WriteRestore(ctx, pr, bw)
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // what follows the end of the archive
		}
		if err == nil {
			err = bw.Flush()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		// A failed restore stops taking the tar: Pack goes on without it.
		pr.CloseWithError(err)
		t.done <- err
	}()
	opts.Tee = pw
	return t
}

// finish ends the tee after Pack returned packErr and, if both
// succeeded, moves the restore tar to path.
func (t *restoreTee) finish(path string, packErr error) error {
	if packErr != nil {
		t.pw.CloseWithError(packErr)
	} else {
		t.pw.Close()
	}
	err := <-t.done
	if err == nil && packErr == nil {
		err = os.Rename(t.tmp, path)
	}
	if err != nil || packErr != nil {
		_ = os.Remove(t.tmp)
	}
	if err == nil {
		err = packErr
	}
	return err
}
