package fileindex

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseUintMatchesStrconv(t *testing.T) {
	for _, c := range []struct {
		s    string
		base int
		bits int
	}{
		{"0", 10, 64}, {"755", 8, 32}, {"7777", 8, 32}, {"8", 8, 32}, {"", 10, 64}, {"-1", 10, 64}, {"+1", 10, 64},
		{"4294967295", 10, 32}, {"4294967296", 10, 32}, {"18446744073709551615", 10, 64}, {"18446744073709551616", 10, 64},
		{"9223372036854775807", 10, 63}, {"9223372036854775808", 10, 63}, {"1_0", 10, 64}, {"0x10", 10, 64}, {"12a", 10, 64},
		{"37777777777", 8, 32}, {"40000000000", 8, 32},
	} {
		want, werr := strconv.ParseUint(c.s, c.base, c.bits)
		got, err := parseUint([]byte(c.s), uint64(c.base), c.bits)
		if (err == nil) != (werr == nil) || (err == nil && got != want) {
			t.Errorf("parseUint(%q, %d, %d) = %d, %v; strconv: %d, %v", c.s, c.base, c.bits, got, err, want, werr)
		}
	}
}

func TestParseTimeBytesMatchesParseTime(t *testing.T) {
	for _, s := range []string{"1700000000.1234567890", "1700000000.5", "1700000000", "1700000000.", "-1.5", "0.000000001",
		"x", "1.x", "1.-5", "", ".5", "99999999999999999999", "1.12345678"} {
		want, werr := ParseTime(s)
		got, err := parseTimeBytes([]byte(s))
		if (err == nil) != (werr == nil) || got != want {
			t.Errorf("parseTimeBytes(%q) = %+v, %v; ParseTime: %+v, %v", s, got, err, want, werr)
		}
	}
}

// TestDiffLargeListing: deletions, changes and additions found in a
// listing large enough for the interpolation search to take many probes.
func TestDiffLargeListing(t *testing.T) {
	started := time.Unix(1700000000, 0)
	mk := func(i int, size int64) Entry {
		return Entry{Type: 'f', Mode: 0o644, Size: size, Mtime: Time{Sec: 1600000000}, Ctime: Time{Sec: 1600000000}, Ino: uint64(i + 10), Nlink: 1, Path: "d/f" + strconv.Itoa(i)}
	}
	var oldb, newb bytes.Buffer
	oldb.WriteString(Header(started))
	newb.WriteString(Header(started))
	dir := Entry{Type: 'd', Mode: 0o755, Mtime: Time{Sec: 1600000000}, Ctime: Time{Sec: 1600000000}, Ino: 2, Nlink: 2, Path: "d"}
	oldb.Write(AppendRecord(nil, &dir))
	newb.Write(AppendRecord(nil, &dir))
	const n = 20000
	for i := 0; i < n; i++ {
		e := mk(i, 10)
		oldb.Write(AppendRecord(nil, &e))
		switch {
		case i%1000 == 1: // deleted
		case i%1000 == 2: // changed
			e.Size = 11
			newb.Write(AppendRecord(nil, &e))
		default:
			newb.Write(AppendRecord(nil, &e))
		}
	}
	e := mk(n, 5)
	newb.Write(AppendRecord(nil, &e))
	open := func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(oldb.Bytes())), nil }
	p, err := Diff(context.Background(), open, &newb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Added != 1 || p.Changed != n/1000 || p.Deleted != n/1000 || len(p.Whiteouts) != n/1000 {
		t.Fatalf("added %d changed %d deleted %d whiteouts %d", p.Added, p.Changed, p.Deleted, len(p.Whiteouts))
	}
	for _, w := range p.Whiteouts {
		if len(w) < 4 || w[:3] != "d/f" || w[len(w)-1] != '1' {
			t.Errorf("whiteout %q", w)
		}
	}
}

func TestAppendTimeMatchesString(t *testing.T) {
	for _, tm := range []Time{{0, 0}, {1700000000, 123456789}, {1, 5}, {-2, 500000000}, {1, 999999999}, {1, 1e9}} {
		if got := string(tm.appendTo([]byte("x"))); got != "x"+tm.String() {
			t.Errorf("appendTo(%+v) = %q, want %q", tm, got, "x"+tm.String())
		}
	}
}

// endless is a listing from a bottle that never ends its header line.
type endless struct{ n, limit int64 }

func (e *endless) Read(p []byte) (int, error) {
	if e.n >= e.limit {
		return 0, io.EOF
	}
	k := min(int64(len(p)), e.limit-e.n)
	for i := range p[:k] {
		p[i] = 'a'
	}
	e.n += k
	return int(k), nil
}

// A header line that does not end is refused once it is longer than a
// header can be, not read into memory to its end.
func TestReaderBoundsTheHeaderLine(t *testing.T) {
	src := &endless{limit: 64 << 20}
	head := strings.NewReader(Magic + " 1.")
	if _, err := NewReader(io.MultiReader(head, src)); err == nil {
		t.Fatal("an endless header line was accepted")
	}
	if src.n > 1<<20 {
		t.Errorf("read %d bytes of an endless header line", src.n)
	}
}

// Sizes a bottle lists are not believed to add up: the plan's byte count
// saturates instead of wrapping around to a small or negative number.
func TestPlanBytesSaturate(t *testing.T) {
	cur := []byte(Header(time.Unix(100, 0)))
	for i, p := range []string{"a", "b", "c"} {
		cur = AppendRecord(cur, &Entry{Type: 'f', Mode: 0o644, Size: 1<<63 - 1, Ino: uint64(i + 1), Nlink: 1, Path: p})
	}
	old := []byte(Header(time.Unix(1, 0)))
	plan, err := Diff(context.Background(), func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(old)), nil }, bytes.NewReader(cur), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Bytes != 1<<63-1 {
		t.Errorf("Bytes = %d, want the largest int64", plan.Bytes)
	}
}
