package iox

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func TestCountingReader(t *testing.T) {
	var reads []int64
	cr := &CountingReader{R: strings.NewReader(strings.Repeat("x", 10000)), OnRead: func(n int64) { reads = append(reads, n) }}
	if _, ok := io.Reader(cr).(io.Seeker); ok {
		t.Fatal("CountingReader must hide Seek")
	}
	n, err := io.Copy(io.Discard, cr)
	if err != nil || n != 10000 || cr.Count() != 10000 {
		t.Fatalf("copied %d (%v), counted %d", n, err, cr.Count())
	}
	var sum int64
	for _, r := range reads {
		if r <= 0 {
			t.Errorf("OnRead(%d)", r)
		}
		sum += r
	}
	if sum != 10000 {
		t.Errorf("OnRead sums to %d", sum)
	}
}

func TestCountingWriter(t *testing.T) {
	var b bytes.Buffer
	cw := &CountingWriter{W: &b}
	for i := 0; i < 3; i++ {
		if _, err := cw.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	if cw.Count() != 15 || b.Len() != 15 {
		t.Errorf("count %d, buffer %d", cw.Count(), b.Len())
	}
}
