package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// copyBufSize is the buffer an upload request copies its body through.
const copyBufSize = 1 << 20

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// session is one blob upload: a temporary file in the store that lives
// across the requests of the upload.
type session struct {
	id   string
	repo string

	mu     sync.Mutex // held by the request working on the session
	w      *oci.Writer
	closed bool
	last   atomic.Int64 // UnixNano of the end of the last request
	timer  *time.Timer
}

// uploads holds the open sessions, at most max, each discarded after
// idle without a request.
type uploads struct {
	store *oci.Store
	max   int
	idle  time.Duration
	log   *slog.Logger

	mu sync.Mutex
	m  map[string]*session
}

func newUploads(s *oci.Store, max int, idle time.Duration, log *slog.Logger) *uploads {
	return &uploads{store: s, max: max, idle: idle, log: log, m: map[string]*session{}}
}

// start opens a session and returns it locked. At the cap, the session
// idle the longest is discarded to make room (a client that abandoned its
// uploads must not lock out the next one); only when every open session
// is busy with a request is the newcomer refused.
func (u *uploads) start(ctx context.Context, repo string) (*session, *regError) {
	w, err := u.store.NewWriter(ctx)
	if err != nil {
		return nil, internal("starting upload", err)
	}
	s := &session{id: newID(), repo: repo, w: w}
	s.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	for {
		u.mu.Lock()
		if len(u.m) < u.max {
			u.m[s.id] = s
			u.mu.Unlock()
			break
		}
		open := make([]*session, 0, len(u.m))
		for _, o := range u.m {
			open = append(open, o)
		}
		u.mu.Unlock()
		if !u.evictIdlest(open) {
			_ = w.Close()
			return nil, newError(429, codeTooManyRequests, fmt.Sprintf("%d uploads are open and busy: retry when one finishes", len(open)))
		}
	}
	s.timer = time.AfterFunc(u.idle, func() { u.expire(s) })
	return s, nil
}

// evictIdlest discards the session of open that has been idle the
// longest and is not in a request. It reports whether it found one.
func (u *uploads) evictIdlest(open []*session) bool {
	sort.Slice(open, func(i, j int) bool { return open[i].last.Load() < open[j].last.Load() })
	for _, o := range open {
		if !o.mu.TryLock() {
			continue
		}
		if o.closed {
			o.mu.Unlock()
			return true // gone meanwhile: room anyway
		}
		u.log.Debug("discarding the longest-idle upload to make room", "upload", o.id, "repo", o.repo, "bytes", o.w.Size())
		u.finish(o)
		o.mu.Unlock()
		return true
	}
	return false
}

// get finds session id of repo and returns it locked.
func (u *uploads) get(id, repo string) (*session, *regError) {
	u.mu.Lock()
	s, ok := u.m[id]
	u.mu.Unlock()
	unknown := newError(404, codeBlobUploadUnknown, "upload "+quote(id)+" is not open here (finished, cancelled, or idle too long): start it again")
	if !ok || s.repo != repo {
		return nil, unknown
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, unknown
	}
	s.timer.Stop()
	return s, nil
}

// release unlocks s after a request and restarts its idle timer.
func (u *uploads) release(s *session) {
	if !s.closed {
		s.last.Store(time.Now().UnixNano())
		s.timer.Reset(u.idle)
	}
	s.mu.Unlock()
}

// finish discards s (if not committed) and forgets it. s is locked.
func (u *uploads) finish(s *session) {
	u.mu.Lock()
	if u.m[s.id] == s {
		delete(u.m, s.id)
	}
	u.mu.Unlock()
	if !s.closed {
		s.closed = true
		s.timer.Stop()
		if err := s.w.Close(); err != nil {
			u.log.Warn("removing upload's temporary file", "upload", s.id, "err", err)
		}
	}
}

// expire discards s if it stayed idle.
func (u *uploads) expire(s *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || time.Since(time.Unix(0, s.last.Load())) < u.idle {
		return
	}
	u.log.Debug("discarding idle upload", "upload", s.id, "repo", s.repo, "bytes", s.w.Size())
	u.finish(s)
}

// closeAll discards every session.
func (u *uploads) closeAll() {
	u.mu.Lock()
	all := make([]*session, 0, len(u.m))
	for _, s := range u.m {
		all = append(all, s)
	}
	u.mu.Unlock()
	for _, s := range all {
		s.mu.Lock()
		u.finish(s)
		s.mu.Unlock()
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// upload dispatches the blob upload endpoints.
func (h *handler) upload(ctx context.Context, w http.ResponseWriter, r *http.Request, repo, id string) *regError {
	if id == "" {
		if r.Method != http.MethodPost {
			return methodNotAllowed(w)
		}
		return h.startUpload(ctx, w, r, repo)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodPut, http.MethodDelete:
	default:
		return methodNotAllowed(w)
	}
	if !h.opts.AllowPush {
		return newError(404, codeBlobUploadUnknown, "this registry is read-only: no uploads")
	}
	s, e := h.uploads.get(id, repo)
	if e != nil {
		return e
	}
	defer h.uploads.release(s)
	switch r.Method {
	case http.MethodDelete:
		h.uploads.finish(s)
		w.WriteHeader(http.StatusNoContent)
		return nil
	case http.MethodPatch:
		if e := h.appendChunk(s, r); e != nil {
			if e.Status == http.StatusRequestedRangeNotSatisfiable {
				setUploadHeaders(w, s)
			}
			return e
		}
		setUploadHeaders(w, s)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusAccepted)
		return nil
	case http.MethodPut:
		return h.finishUpload(ctx, w, r, s)
	}
	setUploadHeaders(w, s)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setUploadHeaders sets Location, Range and Docker-Upload-UUID for s.
func setUploadHeaders(w http.ResponseWriter, s *session) {
	hd := w.Header()
	hd.Set("Location", "/v2/"+s.repo+"/blobs/uploads/"+s.id)
	hd.Set("Docker-Upload-UUID", s.id)
	end := s.w.Size() - 1
	if end < 0 {
		end = 0
	}
	hd.Set("Range", "0-"+strconv.FormatInt(end, 10))
}

// startUpload is POST /v2/<repo>/blobs/uploads/: a cross-repository
// mount (?mount=), a monolithic upload (?digest=), or a new session.
func (h *handler) startUpload(ctx context.Context, w http.ResponseWriter, r *http.Request, repo string) *regError {
	q := r.URL.Query()
	if m := q.Get("mount"); m != "" {
		if d, e := parseDigest(m); e == nil {
			if _, err := h.store.Stat(ctx, d); err == nil {
				return blobCreated(w, repo, d)
			}
		}
		// Not here: fall back to a new session, as the specification says.
	}
	if ds := q.Get("digest"); ds != "" {
		d, e := parseDigest(ds)
		if e != nil {
			return e
		}
		got, _, err := h.store.Ingest(ctx, r.Body, d, r.ContentLength)
		if e := commitError(err); e != nil {
			return e
		}
		return blobCreated(w, repo, got)
	}
	s, e := h.uploads.start(ctx, repo)
	if e != nil {
		return e
	}
	defer h.uploads.release(s)
	setUploadHeaders(w, s)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func blobCreated(w http.ResponseWriter, repo string, d v1.Hash) *regError {
	hd := w.Header()
	hd.Set("Location", location(repo, "blobs", d.String()))
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// commitError maps a failed commit to the registry's error.
func commitError(err error) *regError {
	if err == nil {
		return nil
	}
	var dm *oci.DigestMismatchError
	if errors.As(err, &dm) {
		code := codeDigestInvalid
		if dm.WantSize >= 0 && dm.WantSize != dm.GotSize {
			code = codeSizeInvalid
		}
		e := newError(400, code, "upload does not match: "+dm.Error())
		e.Detail = map[string]string{"digest": dm.GotDigest.String()}
		return e
	}
	var wf *writeFailure
	if errors.As(err, &wf) {
		return internal("writing upload into the store", wf.err)
	}
	return newError(400, codeBlobUploadInvalid, "reading upload: "+err.Error())
}

// appendChunk writes a PATCH (or final PUT) body to the session. With a
// Content-Range, the chunk must start where the upload stands (else 416,
// and nothing is written) and be exactly as long as the range says (else
// the upload is cancelled: its bytes are no longer trustworthy).
func (h *handler) appendChunk(s *session, r *http.Request) *regError {
	var body io.Reader = r.Body
	want := int64(-1)
	if cr := r.Header.Get("Content-Range"); cr != "" {
		start, end, ok := parseContentRange(cr)
		if !ok {
			return newError(400, codeBlobUploadInvalid, "invalid Content-Range "+quote(cr)+": want <start>-<end>")
		}
		if start != s.w.Size() || end < start {
			return newError(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid,
				fmt.Sprintf("chunk %s does not continue the upload, which has %d bytes: send bytes from %d", quote(cr), s.w.Size(), s.w.Size()))
		}
		want = end - start + 1
		if r.ContentLength >= 0 && r.ContentLength != want {
			return newError(400, codeSizeInvalid, fmt.Sprintf("Content-Range %s says %d bytes, Content-Length says %d", quote(cr), want, r.ContentLength))
		}
		body = io.LimitReader(r.Body, want+1)
	}
	bp := copyBufs.Get().(*[]byte)
	n, err := io.CopyBuffer(failWriter{s.w}, body, *bp)
	copyBufs.Put(bp)
	if err != nil {
		var wf *writeFailure
		if errors.As(err, &wf) {
			h.uploads.finish(s)
			return internal("writing upload into the store", wf.err)
		}
		// The client went away mid-chunk: keep what arrived, so that it can
		// ask where the upload stands and resume from there.
		return newError(400, codeBlobUploadInvalid, "reading chunk: "+err.Error())
	}
	if want >= 0 && n != want {
		h.uploads.finish(s)
		return newError(400, codeBlobUploadInvalid, fmt.Sprintf("chunk had %d bytes where Content-Range said %d: upload cancelled, start it again", n, want))
	}
	return nil
}

// finishUpload is the closing PUT ?digest=: append the body, verify and
// move the blob into place. Whatever fails ends the session and removes
// its data (a client whose digest did not match starts over), except a
// chunk that does not continue the upload (416), which changed nothing.
func (h *handler) finishUpload(ctx context.Context, w http.ResponseWriter, r *http.Request, s *session) (e *regError) {
	defer func() {
		if e == nil || e.Status != http.StatusRequestedRangeNotSatisfiable {
			h.uploads.finish(s)
		} else {
			setUploadHeaders(w, s)
		}
	}()
	ds := r.URL.Query().Get("digest")
	if ds == "" {
		return newError(400, codeDigestInvalid, "closing an upload needs ?digest=: upload cancelled, start it again")
	}
	d, e := parseDigest(ds)
	if e != nil {
		return e
	}
	if e := h.appendChunk(s, r); e != nil {
		return e
	}
	_, _, err := s.w.Commit(ctx, d, -1)
	if e := commitError(err); e != nil {
		return e
	}
	return blobCreated(w, s.repo, d)
}

// parseContentRange parses a chunk's "<start>-<end>" (a "bytes " or
// "bytes=" prefix, and a "/<total>" suffix, are tolerated).
func parseContentRange(s string) (int64, int64, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes="), "bytes ")
	s, _, _ = strings.Cut(s, "/")
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || start < 0 || end < 0 {
		return 0, 0, false
	}
	return start, end, true
}

// writeFailure marks an error of the store's side of a copy.
type writeFailure struct{ err error }

func (e *writeFailure) Error() string { return e.err.Error() }

// failWriter tags write errors, so a copy can tell them from read errors.
type failWriter struct{ w io.Writer }

func (f failWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err != nil {
		err = &writeFailure{err}
	}
	return n, err
}
