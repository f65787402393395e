package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
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
	if rg := r.Header.Get("Range"); rg != "" {
		r.Header.Set("Range", clampRange(rg))
	}
	http.ServeContent(&rangeErrorWriter{ResponseWriter: w, r: r}, r, "", time.Time{}, f)
	return nil
}

// clampRange rewrites the byte ranges of a Range header whose last
// position is too large for an int64 ("bytes=0-18446744073709551615") as
// open-ended ("bytes=0-"), and such a suffix length ("bytes=-99…9") as
// the whole blob: RFC 9110 clamps both to the end, and
// http.ServeContent would refuse the number as invalid.
// Anything else is left for http.ServeContent to judge.
func clampRange(h string) string {
	unit, set, ok := strings.Cut(h, "=")
	if !ok || strings.TrimSpace(unit) != "bytes" {
		return h
	}
	specs := strings.Split(set, ",")
	changed := false
	for i, sp := range specs {
		first, last, ok := strings.Cut(strings.TrimSpace(sp), "-")
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		if !ok || !allDigits(first) || !allDigits(last) || last == "" {
			continue
		}
		if _, err := strconv.ParseInt(last, 10, 64); err == nil {
			continue
		}
		if first == "" {
			first = "0" // a suffix longer than any blob: all of it
		}
		specs[i] = first + "-"
		changed = true
	}
	if !changed {
		return h
	}
	return "bytes=" + strings.Join(specs, ",")
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
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
