package snapshot

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Sparse files leave the filter as PAX sparse format 1.0 entries, the
// form `tar --sparse --format=posix` writes and Go's archive/tar (so
// dockerd, containerd, umoci) reads back with holes as zeros: PAX
// records GNU.sparse.{major=1,minor=0,name,realsize}, a header named
// DIR/GNUSparseFile.0/BASE, and a data section holding the map (count,
// then offset and length lines, padded to a block) and the data
// fragments. Go's tar.Writer drops GNU.sparse.* records, so these
// headers are encoded here.

const (
	// sparseBlock is the granularity of holes: an aligned run of
	// sparseBlock zero bytes is a hole.
	sparseBlock = 4096
)

// maxSparseFrags bounds a sparse map. Past it, fragments separated by
// the smallest holes are merged (the holes written as zeros).
var maxSparseFrags = 1 << 16

// isSparse reports whether the input marked the entry as sparse: an old
// GNU sparse header or GNU.sparse.* PAX records.
func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

type frag struct{ off, n int64 }

// sparseMap builds the data fragments of a file in one pass, with at most
// max entries: when full, neighbours closer than a doubling gap are merged.
type sparseMap struct {
	frags []frag
	max   int
	gap   int64 // holes shorter than gap are filled with zeros
}

func (m *sparseMap) add(off, n int64) {
	if k := len(m.frags); k > 0 {
		last := &m.frags[k-1]
		if off-(last.off+last.n) < m.gap || off == last.off+last.n {
			last.n = off + n - last.off
			return
		}
	}
	m.frags = append(m.frags, frag{off, n})
	for len(m.frags) >= m.max {
		if m.gap == 0 {
			m.gap = sparseBlock
		}
		m.gap *= 2
		m.coalesce()
	}
}

func (m *sparseMap) coalesce() {
	out := m.frags[:1]
	for _, f := range m.frags[1:] {
		last := &out[len(out)-1]
		if f.off-(last.off+last.n) < m.gap {
			last.n = f.off + f.n - last.off
			continue
		}
		out = append(out, f)
	}
	m.frags = out
}

// copySparse reads the content of a sparse entry from r (holes read as
// zeros), keeps aligned zero blocks as holes, spools the data at its own
// offsets in a temporary file of dir (itself sparse, removed at once)
// and writes the entry's headers, map and data to w, which must be at a
// block boundary of the tar stream. hdr is the filtered header; its
// Size is the file's real size. It returns the bytes written.
func copySparse(w io.Writer, hdr *tar.Header, r io.Reader, dir string) (int64, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	spool, err := os.CreateTemp(dir, "bb-sparse-*")
	if err != nil {
		return 0, fmt.Errorf("spooling sparse file %q: %w (set TMPDIR to a writable directory)", hdr.Name, err)
	}
	defer spool.Close()
	if err := os.Remove(spool.Name()); err != nil {
		return 0, fmt.Errorf("spooling sparse file %q: %w", hdr.Name, err)
	}

	m := sparseMap{max: maxSparseFrags}
	buf := make([]byte, spoolBuf)
	var off int64
	for {
		n, rerr := fill(r, buf)
		if n == len(buf) && allZero(buf) {
			n = 0 // a hole of a whole buffer
			off += spoolBuf
		}
		for i := 0; i < n; {
			end := min(i+sparseBlock, n)
			if allZero(buf[i:end]) && end-i == sparseBlock {
				i = end
				continue
			}
			j := end
			for j < n {
				e := min(j+sparseBlock, n)
				if e-j == sparseBlock && allZero(buf[j:e]) {
					break
				}
				j = e
			}
			if _, err := spool.WriteAt(buf[i:j], off+int64(i)); err != nil {
				return 0, fmt.Errorf("spooling sparse file %q: %w", hdr.Name, err)
			}
			m.add(off+int64(i), int64(j-i))
			i = j
		}
		off += int64(n)
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return 0, fmt.Errorf("reading %q: %w", hdr.Name, rerr)
		}
	}
	if off != hdr.Size {
		return 0, fmt.Errorf("reading %q: %d bytes, header says %d", hdr.Name, off, hdr.Size)
	}
	frags := m.frags
	if len(frags) == 0 || frags[len(frags)-1].off+frags[len(frags)-1].n < off {
		frags = append(frags, frag{off, 0}) // the map ends at the file's size
	}
	smap := encodeSparseMap(frags)
	size := int64(len(smap))
	for _, f := range frags {
		size += f.n
	}
	hb, err := sparseHeaders(hdr, size)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if _, err := bw.Write(hb); err != nil {
		return 0, err
	}
	if _, err := bw.Write(smap); err != nil {
		return 0, err
	}
	for _, f := range frags {
		if _, err := io.Copy(bw, io.NewSectionReader(spool, f.off, f.n)); err != nil {
			return 0, fmt.Errorf("copying sparse file %q from its spool: %w", hdr.Name, err)
		}
	}
	if _, err := bw.Write(make([]byte, pad512(size))); err != nil {
		return 0, err
	}
	return int64(len(hb)) + size + pad512(size), bw.Flush()
}

// zeros is compared against (bytes.Equal is vectorised).
var zeros [spoolBuf]byte

const spoolBuf = 1 << 20

func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// fill reads until buf is full or r fails (io.EOF at the end).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func pad512(n int64) int64 { return -n & 511 }

// encodeSparseMap is the map of format 1.0: the count of fragments, then
// each one's offset and length, one decimal number a line, padded with
// zeros to a block.
func encodeSparseMap(frags []frag) []byte {
	b := strconv.AppendInt(nil, int64(len(frags)), 10)
	b = append(b, '\n')
	for _, f := range frags {
		b = strconv.AppendInt(b, f.off, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, f.n, 10)
		b = append(b, '\n')
	}
	return append(b, make([]byte, pad512(int64(len(b))))...)
}

// sparseHeaders encodes the PAX extended header and the ustar header of
// a sparse entry whose data section (map and fragments) is size bytes.
// Everything that does not fit a ustar field goes to a PAX record; the
// ustar name is the GNUSparseFile.0 name, shortened if need be (readers
// take GNU.sparse.name).
func sparseHeaders(hdr *tar.Header, size int64) ([]byte, error) {
	dir, base := path.Split(hdr.Name)
	name := path.Join(dir, "GNUSparseFile.0", base)
	recs := map[string]string{}
	for k, v := range hdr.PAXRecords {
		recs[k] = v
	}
	recs["GNU.sparse.major"] = "1"
	recs["GNU.sparse.minor"] = "0"
	recs["GNU.sparse.name"] = hdr.Name
	recs["GNU.sparse.realsize"] = strconv.FormatInt(hdr.Size, 10)
	const max8, max12 = 1<<21 - 1, 1<<33 - 1
	uid, gid, mtime, hsize := int64(hdr.Uid), int64(hdr.Gid), hdr.ModTime.Unix(), size
	if uid < 0 || uid > max8 {
		recs["uid"], uid = strconv.FormatInt(uid, 10), 0
	}
	if gid < 0 || gid > max8 {
		recs["gid"], gid = strconv.FormatInt(gid, 10), 0
	}
	if mtime < 0 || mtime > max12 {
		recs["mtime"], mtime = strconv.FormatInt(mtime, 10), 0
	}
	if hsize > max12 {
		recs["size"], hsize = strconv.FormatInt(hsize, 10), 0
	}
	var pax []byte
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range recs {
			if !yield(k) {
				return
			}
		}
	}) {
		pax = append(pax, paxRecord(k, recs[k])...)
	}
	xname := path.Join(dir, "PaxHeaders.0", base)
	out := ustarBlock(xname, tar.TypeXHeader, 0o644, 0, 0, int64(len(pax)), mtime)
	out = append(out, pax...)
	out = append(out, make([]byte, pad512(int64(len(pax))))...)
	out = append(out, ustarBlock(name, tar.TypeReg, hdr.Mode&0o7777, uid, gid, hsize, mtime)...)
	return out, nil
}

// paxRecord is "LEN KEY=VALUE\n" where LEN counts the whole record.
func paxRecord(k, v string) string {
	rest := " " + k + "=" + v + "\n"
	n := len(rest) + 1
	for n < len(strconv.Itoa(n))+len(rest) {
		n++
	}
	return strconv.Itoa(n) + rest
}

// ustarBlock encodes one 512-byte ustar header. Numbers must fit their
// fields (the caller moves larger ones to PAX records); a name longer
// than ustar allows is split at a slash or cut.
func ustarBlock(name string, flag byte, mode, uid, gid, size, mtime int64) []byte {
	b := make([]byte, 512)
	prefix := ""
	if len(name) > 100 {
		i := strings.LastIndexByte(name[:min(len(name), 156)], '/')
		if i > 0 && len(name)-i-1 <= 100 {
			prefix, name = name[:i], name[i+1:]
		} else {
			name = name[:100]
		}
	}
	copy(b[0:100], name)
	octal(b[100:108], mode)
	octal(b[108:116], uid)
	octal(b[116:124], gid)
	octal(b[124:136], size)
	octal(b[136:148], mtime)
	b[156] = flag
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	copy(b[345:500], prefix)
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	octal(b[148:155], sum)
	b[155] = ' '
	return b
}

// octal writes v as zero-padded octal digits and a NUL into f.
func octal(f []byte, v int64) {
	s := strconv.FormatInt(v, 8)
	w := len(f) - 1
	for len(s) < w {
		s = "0" + s
	}
	copy(f, s[len(s)-w:])
	f[w] = 0
}
