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
	b = append(b, e.Mtime.String()...)
	b = append(b, ' ')
	b = append(b, e.Ctime.String()...)
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
	Listed Time
	n      int64
}

// NewReader reads the header of a listing.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	line, err := br.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading file listing header: %w", err)
	}
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
	head, err := r.field()
	if errors.Is(err, io.EOF) {
		if len(head) == 0 {
			return io.EOF
		}
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	r.n++
	if err := parseHead(head, e); err != nil {
		return fmt.Errorf("file listing record %d: %w", r.n, err)
	}
	p, err := r.field()
	if err != nil {
		return unexpected(err)
	}
	e.Path = cleanPath(string(p))
	l, err := r.field()
	if err != nil {
		return unexpected(err)
	}
	e.Link = string(l)
	return nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// cleanPath strips find's "./" and any leading slashes.
func cleanPath(p string) string {
	p = strings.TrimPrefix(p, "./")
	if p == "." {
		return ""
	}
	return strings.TrimLeft(p, "/")
}

func parseHead(b []byte, e *Entry) error {
	f := bytes.Fields(b)
	if len(f) != 9 || len(f[0]) != 1 {
		return fmt.Errorf("malformed record %q", trunc(string(b)))
	}
	e.Type = f[0][0]
	var err error
	num := func(s []byte, base int, bits int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = strconv.ParseUint(string(s), base, bits)
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
	if e.Mtime, err = ParseTime(string(f[5])); err != nil {
		return err
	}
	if e.Ctime, err = ParseTime(string(f[6])); err != nil {
		return err
	}
	switch e.Type {
	case 'f', 'd', 'l', 'b', 'c', 'p', 's':
	default:
		return fmt.Errorf("unknown entry type %q", e.Type)
	}
	return nil
}
