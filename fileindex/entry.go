package fileindex

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Magic starts every listing.
const Magic = "bb-fileindex v1"

// RacyWindow is how close to (or after) the start of its listing an
// entry's ctime may be for the entry to have changed again within the
// same timestamp tick: the next Diff treats such an entry as changed.
const RacyWindow = time.Second

// Entry is one file system entry of a listing.
type Entry struct {
	// Type is find's %y: f (regular), d, l, b, c, p, s.
	Type byte
	// Mode holds the permission bits with setuid, setgid and sticky.
	Mode  uint32
	UID   uint32
	GID   uint32
	Size  int64
	Mtime Time
	Ctime Time
	Ino   uint64
	Nlink uint64
	// Path is relative to the root, without a leading "./" or "/".
	Path string
	// Link is a symlink's target.
	Link string
}

// Time is a file time as listed (seconds and nanoseconds since the epoch).
type Time struct {
	Sec  int64
	Nsec int64
}

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t.Sec < u.Sec || (t.Sec == u.Sec && t.Nsec < u.Nsec) }

// FromTime converts a time.Time.
func FromTime(t time.Time) Time { return Time{Sec: t.Unix(), Nsec: int64(t.Nanosecond())} }

// Go returns t as a time.Time.
func (t Time) Go() time.Time { return time.Unix(t.Sec, t.Nsec) }

// String prints t the way find's %T@ does (seconds, a dot, nanoseconds).
func (t Time) String() string { return fmt.Sprintf("%d.%09d", t.Sec, t.Nsec) }

// appendTo appends t as String prints it, without fmt.
func (t Time) appendTo(b []byte) []byte {
	if t.Sec < 0 || t.Nsec < 0 || t.Nsec > 999999999 {
		return append(b, t.String()...)
	}
	b = strconv.AppendInt(b, t.Sec, 10)
	var frac [10]byte
	frac[0] = '.'
	n := t.Nsec
	for i := 9; i >= 1; i-- {
		frac[i] = byte('0' + n%10)
		n /= 10
	}
	return append(b, frac[:]...)
}

// ParseTime parses "SEC[.FRACTION]"; digits beyond nanoseconds are dropped.
func ParseTime(s string) (Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return Time{}, fmt.Errorf("bad time %q", s)
	}
	var ns int64
	if frac != "" {
		if len(frac) > 9 {
			frac = frac[:9]
		}
		for len(frac) < 9 {
			frac += "0"
		}
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil || ns < 0 {
			return Time{}, fmt.Errorf("bad time %q", s)
		}
	}
	if n < 0 && ns > 0 { // -1.5 means 1.5 s before the epoch
		n--
		ns = 1e9 - ns
	}
	return Time{Sec: n, Nsec: ns}, nil
}

// IsDir reports whether e is a directory.
func (e *Entry) IsDir() bool { return e.Type == 'd' }

// AppendRecord appends e's record to b.
func AppendRecord(b []byte, e *Entry) []byte {
	b = append(b, e.Type, ' ')
	b = strconv.AppendUint(b, uint64(e.Mode), 8)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.UID), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(e.GID), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Size, 10)
	b = append(b, ' ')
	b = e.Mtime.appendTo(b)
	b = append(b, ' ')
	b = e.Ctime.appendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Ino, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Nlink, 10)
	b = append(b, 0)
	b = append(b, e.Path...)
	b = append(b, 0)
	b = append(b, e.Link...)
	return append(b, 0)
}

// Header returns the first line of a listing started at t.
func Header(t time.Time) string { return Magic + " " + FromTime(t).String() + "\n" }

// Reader reads a listing.
type Reader struct {
	r *bufio.Reader
	// Listed is when the listing started.
	Listed  Time
	n       int64
	scratch []byte
	head    []byte // the last record's head, when nextRaw did not parse it
}

// NewReader reads the header of a listing.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	b, err := br.ReadSlice('\n') // at most the buffer: the header is a line of the bottle's output
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("not a file listing (header %q... is longer than %d bytes)", trunc(string(b)), br.Size())
		}
		return nil, fmt.Errorf("reading file listing header: %w", err)
	}
	line := string(b)
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), Magic+" ")
	if !ok {
		return nil, fmt.Errorf("not a file listing (header %q; GNU find and date with %%N are needed in the bottle)", trunc(line))
	}
	t, err := ParseTime(rest)
	if err != nil {
		return nil, fmt.Errorf("file listing header: %w", err)
	}
	return &Reader{r: br, Listed: t}, nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Next reads the next entry into e (whose strings are replaced). It
// returns io.EOF at the end. The root entry ("") is skipped.
func (r *Reader) Next(e *Entry) error {
	for {
		if err := r.next(e); err != nil {
			return err
		}
		if e.Path != "" {
			return nil
		}
	}
}

// nextBytes is Next without the string copies: path and link are valid
// until the next read and e's strings are left alone; without parse, e
// is not filled in at all (the head is skipped).
func (r *Reader) nextBytes(e *Entry, parse bool) (path, link []byte, err error) {
	for {
		path, link, err = r.nextRaw(e, parse)
		if err != nil || len(path) > 0 {
			return path, link, err
		}
	}
}

// skip reads past one record without looking at it.
func (r *Reader) skip() error {
	for i := 0; i < 3; i++ {
		if _, err := r.field(); err != nil {
			if i > 0 {
				err = unexpected(err)
			}
			return err
		}
	}
	return nil
}

func (r *Reader) field() ([]byte, error) {
	b, err := r.r.ReadSlice(0)
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("file listing record %d is longer than %d bytes", r.n, r.r.Size())
	}
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

func (r *Reader) next(e *Entry) error {
	p, l, err := r.nextRaw(e, true)
	if err != nil {
		return err
	}
	e.Path = string(p)
	e.Link = string(l)
	return nil
}

// nextRaw reads one record: the head into e when parse is set (else
// r.head keeps it for parseHead), the path (cleaned) and link target as
// bytes valid until the next read.
func (r *Reader) nextRaw(e *Entry, parse bool) (path, link []byte, err error) {
	head, err := r.field()
	if errors.Is(err, io.EOF) {
		if len(head) == 0 {
			return nil, nil, io.EOF
		}
		return nil, nil, io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, nil, err
	}
	r.n++
	if parse {
		if err := parseHead(head, e); err != nil {
			return nil, nil, fmt.Errorf("file listing record %d: %w", r.n, err)
		}
		r.scratch = r.scratch[:0]
	} else {
		// ReadSlice's buffer is only valid until the next read.
		r.scratch = append(r.scratch[:0], head...)
	}
	h := len(r.scratch)
	p, err := r.field()
	if err != nil {
		return nil, nil, unexpected(err)
	}
	r.scratch = append(r.scratch, p...)
	n := len(r.scratch)
	l, err := r.field()
	if err != nil {
		return nil, nil, unexpected(err)
	}
	r.scratch = append(r.scratch, l...)
	r.head = r.scratch[:h]
	path = cleanPathBytes(r.scratch[h:n])
	if !validPath(path) {
		return nil, nil, fmt.Errorf("file listing record %d: path %q has an empty, \".\" or \"..\" component", r.n, trunc(string(path)))
	}
	return path, r.scratch[n:], nil
}

// validPath reports whether p (cleaned, "" for the root) has no empty,
// "." or ".." component: a listing comes from the bottle, and its paths
// become the names of layer entries and whiteouts (".wh.." would name
// the parent directory).
func validPath(p []byte) bool {
	for len(p) > 0 {
		c := p
		if i := bytes.IndexByte(p, '/'); i >= 0 {
			c, p = p[:i], p[i+1:]
			if len(p) == 0 {
				return false // a trailing slash
			}
		} else {
			p = nil
		}
		if len(c) == 0 || (c[0] == '.' && (len(c) == 1 || (len(c) == 2 && c[1] == '.'))) {
			return false
		}
	}
	return true
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// cleanPathBytes strips find's "./" and any leading slashes.
func cleanPathBytes(p []byte) []byte {
	p = bytes.TrimPrefix(p, []byte("./"))
	if len(p) == 1 && p[0] == '.' {
		return p[:0]
	}
	return bytes.TrimLeft(p, "/")
}

func parseHead(b []byte, e *Entry) error {
	// Nine space-separated fields, split without allocating (this runs
	// once per entry, up to three times per listing in a Diff).
	var f [9][]byte
	n := 0
	for i := 0; i < len(b); {
		for i < len(b) && b[i] == ' ' {
			i++
		}
		if i == len(b) {
			break
		}
		j := i
		for j < len(b) && b[j] != ' ' {
			j++
		}
		if n == len(f) {
			n++
			break
		}
		f[n] = b[i:j]
		n++
		i = j
	}
	if n != len(f) || len(f[0]) != 1 {
		return fmt.Errorf("malformed record %q", trunc(string(b)))
	}
	e.Type = f[0][0]
	var err error
	num := func(s []byte, base uint64, bits int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = parseUint(s, base, bits)
		return v
	}
	e.Mode = uint32(num(f[1], 8, 32))
	e.UID = uint32(num(f[2], 10, 32))
	e.GID = uint32(num(f[3], 10, 32))
	e.Size = int64(num(f[4], 10, 63))
	e.Ino = num(f[7], 10, 64)
	e.Nlink = num(f[8], 10, 64)
	if err != nil {
		return fmt.Errorf("malformed record %q: %w", trunc(string(b)), err)
	}
	if e.Mtime, err = parseTimeBytes(f[5]); err != nil {
		return err
	}
	if e.Ctime, err = parseTimeBytes(f[6]); err != nil {
		return err
	}
	switch e.Type {
	case 'f', 'd', 'l', 'b', 'c', 'p', 's':
	default:
		return fmt.Errorf("unknown entry type %q", e.Type)
	}
	return nil
}

var errSyntax = errors.New("invalid number")

// parseUint is strconv.ParseUint for base 8 or 10 on bytes (no sign, no
// underscores, no prefix), without a string conversion.
func parseUint(s []byte, base uint64, bits int) (uint64, error) {
	if len(s) == 0 {
		return 0, errSyntax
	}
	limit := uint64(1)<<uint(bits) - 1
	if bits == 64 {
		limit = ^uint64(0)
	}
	var v uint64
	for _, c := range s {
		d := uint64(c) - '0'
		if c < '0' || d >= base {
			return 0, errSyntax
		}
		if v > (limit-d)/base {
			return 0, strconv.ErrRange
		}
		v = v*base + d
	}
	return v, nil
}

// parseTimeBytes is ParseTime on bytes: the fast path for the usual
// "SEC.NANOS" of non-negative times, ParseTime for the rest.
func parseTimeBytes(b []byte) (Time, error) {
	sec, frac, _ := bytes.Cut(b, []byte{'.'})
	if len(sec) == 0 || sec[0] == '-' || sec[0] == '+' {
		return ParseTime(string(b))
	}
	n, err := parseUint(sec, 10, 63)
	if err != nil {
		return Time{}, fmt.Errorf("bad time %q", b)
	}
	var ns int64
	for i := 0; i < 9; i++ {
		ns *= 10
		if i < len(frac) {
			if frac[i] < '0' || frac[i] > '9' {
				return Time{}, fmt.Errorf("bad time %q", b)
			}
			ns += int64(frac[i] - '0')
		}
	}
	for _, c := range frac[min(len(frac), 9):] {
		if c < '0' || c > '9' {
			return Time{}, fmt.Errorf("bad time %q", b)
		}
	}
	return Time{Sec: int64(n), Nsec: ns}, nil
}
