package iox

import (
	"hash"
	"io"
	"sync/atomic"
)

// CountingReader counts the bytes read through R. Read is its only
// method: it hides Seek and WriteTo, so a reader on top of it (tar, a
// copy) takes every byte through Read and the count stays exact.
type CountingReader struct {
	R io.Reader
	// OnRead, if set, receives the size of every read that returned
	// bytes, after they were counted.
	OnRead func(n int64)
	n      atomic.Int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	if n > 0 {
		c.n.Add(int64(n))
		if c.OnRead != nil {
			c.OnRead(int64(n))
		}
	}
	return n, err
}

// Count returns the number of bytes read so far. It is safe to call
// while another goroutine reads.
func (c *CountingReader) Count() int64 { return c.n.Load() }

// CountingWriter counts the bytes written through W.
type CountingWriter struct {
	W io.Writer
	n atomic.Int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// Count returns the number of bytes written so far. It is safe to call
// while another goroutine writes.
func (c *CountingWriter) Count() int64 { return c.n.Load() }

// HashingReader hashes and counts what is read through it (not safe for
// concurrent use).
type HashingReader struct {
	R io.Reader
	H hash.Hash
	N int64
}

func (r *HashingReader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	r.H.Write(p[:n])
	r.N += int64(n)
	return n, err
}
