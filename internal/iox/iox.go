package iox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ContextReader returns r, failing with ctx's error once ctx is done.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return ctxReader{ctx, r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Tail is an io.Writer that keeps the last Max bytes written to it. It is
// safe for concurrent use.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

// NewTail returns a Tail keeping max bytes.
func NewTail(max int) *Tail { return &Tail{Max: max} }

// Write implements io.Writer.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.Max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.Max:]...)
	}
	return len(p), nil
}

// String returns what was kept, trimmed of surrounding space.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// RemoveStale removes the regular files in dir whose names start with
// prefix and that were last modified more than grace ago: the temporary
// files of writes that were killed before they could clean up. A live
// write keeps its file's time fresh, so it is never taken. It returns
// the paths removed; a missing dir is not an error.
func RemoveStale(dir, prefix string, grace time.Duration) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	before := time.Now().Add(-grace)
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.ModTime().After(before) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("removing stale temporary file %s: %w", p, err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// StaleTempPrefix is the prefix of the temporary files written beside
// path before they are renamed to it ("." + base + ".tmp-").
func StaleTempPrefix(path string) string {
	return "." + filepath.Base(path) + ".tmp-"
}

// RemoveStaleBeside removes the temporary files of killed writes of path
// (see StaleTempPrefix) older than grace.
func RemoveStaleBeside(path string, grace time.Duration) ([]string, error) {
	return RemoveStale(filepath.Dir(path), StaleTempPrefix(path), grace)
}

// TeeWriter writes to W until a write fails, then drops what follows,
// without ever failing itself: a side copy whose failure must not fail
// the main stream. Err is the first failure.
type TeeWriter struct {
	W   io.Writer
	Err error
}

func (t *TeeWriter) Write(p []byte) (int, error) {
	if t.Err == nil {
		_, t.Err = t.W.Write(p)
	}
	return len(p), nil
}
