package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/bot-bottle/bb/oci"
)

// getBlob serves a blob straight from its file in the store: HEAD, GET
// and Range requests through http.ServeContent, which streams the file
// (sendfile on plain HTTP) without holding it in memory.
func (h *handler) getBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, ref string) *regError {
	d, e := parseDigest(ref)
	if e != nil {
		return e
	}
	f, err := h.store.Blob(ctx, d)
	if errors.Is(err, oci.ErrNotFound) {
		e := newError(404, codeBlobUnknown, "blob "+d.String()+" is not in this registry")
		e.Detail = map[string]string{"digest": d.String()}
		return e
	}
	if err != nil {
		return internal("opening blob", err)
	}
	defer f.Close()
	hd := w.Header()
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("ETag", `"`+d.String()+`"`)
	hd.Set("Cache-Control", "max-age=31536000")
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w, r: r}, r, "", time.Time{}, f)
	return nil
}

// rangeErrorWriter turns http.ServeContent's plain-text 416 answer into
// the registry's JSON error body (keeping its Content-Range header).
type rangeErrorWriter struct {
	http.ResponseWriter
	r      *http.Request
	failed bool
}

func (w *rangeErrorWriter) WriteHeader(code int) {
	if code == http.StatusRequestedRangeNotSatisfiable {
		w.failed = true
		writeError(w.ResponseWriter, w.r, newError(code, codeRangeInvalid,
			fmt.Sprintf("range %s is outside the blob (%s)", quote(w.r.Header.Get("Range")), w.Header().Get("Content-Range"))))
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *rangeErrorWriter) Write(p []byte) (int, error) {
	if w.failed {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

func (w *rangeErrorWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.failed {
		return io.Copy(io.Discard, r)
	}
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.ResponseWriter}, r)
}

func (w *rangeErrorWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// writeJSON sends v as JSON with the given status and content type.
func writeJSON(w http.ResponseWriter, r *http.Request, status int, contentType string, v any) *regError {
	b, err := json.Marshal(v)
	if err != nil {
		return internal("encoding response", err)
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}
