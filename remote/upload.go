package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BlobStatus says what happened to one blob.
type BlobStatus string

// Blob outcomes.
const (
	// BlobExists: the registry already had the blob (push).
	BlobExists BlobStatus = "exists"
	// BlobMounted: mounted from another repository of the registry (push).
	BlobMounted BlobStatus = "mounted"
	// BlobUploaded: sent (push).
	BlobUploaded BlobStatus = "uploaded"
	// BlobResumed: an earlier push's upload was continued (push).
	BlobResumed BlobStatus = "resumed"
	// BlobFetched: downloaded into the store (pull).
	BlobFetched BlobStatus = "fetched"
	// BlobPresent: the store already had the blob (pull).
	BlobPresent BlobStatus = "present"
)

// BlobResult reports one blob of a push or pull.
type BlobResult struct {
	Digest    v1.Hash         `json:"digest"`
	Size      int64           `json:"size"`
	MediaType types.MediaType `json:"mediaType,omitempty"`
	Status    BlobStatus      `json:"status"`
	// Bytes is what crossed the network for this blob (bytes of a chunk
	// that had to be sent again count twice).
	Bytes int64 `json:"bytes"`
	// ResumedAt is the offset an earlier push's upload continued from.
	ResumedAt int64 `json:"resumedAt,omitempty"`
	// Restarts counts uploads that had to start over because the
	// registry dropped the session.
	Restarts int `json:"restarts,omitempty"`
	// Requests is the number of requests that carried the blob's bytes.
	Requests    int    `json:"requests,omitempty"`
	MountedFrom string `json:"mountedFrom,omitempty"`
}

// pushBlob makes the blob desc of the store present in the repository.
func (c *client) pushBlob(ctx context.Context, st *state, store *oci.Store, desc v1.Descriptor, mountFrom string) (res BlobResult, err error) {
	res = BlobResult{Digest: desc.Digest, Size: desc.Size, MediaType: desc.MediaType}
	key := sessionKey(c.reg, c.repo, desc.Digest)
	unlock, err := st.lockSession(key)
	if err != nil {
		return res, err
	}
	defer unlock()
	if ok, err := c.blobExists(ctx, desc); err != nil {
		return res, err
	} else if ok {
		_ = st.dropSession(key)
		res.Status = BlobExists
		return res, nil
	}
	f, err := store.Blob(ctx, desc.Digest)
	if err != nil {
		return res, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return res, err
	} else if fi.Size() != desc.Size {
		return res, fmt.Errorf("blob %s in the store has %d bytes, the manifest says %d: the store is damaged", desc.Digest, fi.Size(), desc.Size)
	}
	u := &upload{c: c, st: st, key: key, f: f, desc: desc, res: &res}
	defer func() { res.Bytes = u.sent.Load() }()
	if ses, ok := st.loadSession(key, c.reg, c.repo, desc.Digest, desc.Size); ok {
		loc, off, alive, err := c.uploadStatus(ctx, ses.Location, ses.Offset, desc.Size)
		if err != nil {
			return res, c.explain("resuming the upload of "+desc.Digest.String()+" to", err)
		}
		if alive {
			c.opts.Logger.Debug("resuming upload", "blob", desc.Digest, "offset", off, "registry", c.reg)
			u.loc, u.off = loc, off
			res.Status, res.ResumedAt = BlobResumed, off
		} else {
			c.opts.Logger.Debug("upload session gone; starting over", "blob", desc.Digest, "registry", c.reg)
			_ = st.dropSession(key)
		}
	}
	if u.loc == "" {
		loc, mounted, err := c.startUpload(ctx, desc.Digest, mountFrom)
		if err != nil {
			return res, c.explain("starting the upload of "+desc.Digest.String()+" to", err)
		}
		if mounted {
			res.Status, res.MountedFrom = BlobMounted, mountFrom
			return res, nil
		}
		u.loc = loc
		res.Status = BlobUploaded
	}
	if err := u.run(ctx); err != nil {
		return res, c.explain("uploading "+desc.Digest.String()+" to", err)
	}
	_ = st.dropSession(key)
	return res, nil
}

// blobExists asks the registry whether it has desc (HEAD).
func (c *client) blobExists(ctx context.Context, desc v1.Descriptor) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.url("blobs/"+desc.Digest.String()), nil)
	if err != nil {
		return false, err
	}
	// A 5xx answer to the HEAD is not a refusal: distribution answers 500
	// for a blob whose upload a cut connection left behind. The question
	// only saves an upload, so the blob is sent, and the upload's own
	// answer decides.
	resp, err := c.do(req, http.StatusOK, http.StatusNotFound, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout)
	if err != nil {
		return false, c.explain("checking for "+desc.Digest.String()+" in", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		c.opts.Logger.Info("the registry could not say whether it has a blob; uploading it", "blob", desc.Digest, "status", resp.StatusCode)
		return false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return false, nil
	}
	if resp.ContentLength > 0 && resp.ContentLength != desc.Size {
		c.opts.Logger.Warn("registry reports another size for a blob; uploading it", "blob", desc.Digest, "size", resp.ContentLength, "want", desc.Size)
		return false, nil
	}
	return true, nil
}

// startUpload opens an upload session (POST). With from set, it first
// asks for a cross-repository mount; mounted reports that it worked.
func (c *client) startUpload(ctx context.Context, h v1.Hash, from string) (loc string, mounted bool, err error) {
	u := c.url("blobs/uploads/")
	if from != "" {
		u += "?" + url.Values{"mount": {h.String()}, "from": {from}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := c.do(req, http.StatusCreated, http.StatusAccepted)
	if err != nil {
		return "", false, err
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusCreated {
		return "", true, nil
	}
	loc, err = resolve(resp.Request.URL, resp.Header.Get("Location"))
	return loc, false, err
}

// uploadStatus asks the registry how much of the upload at loc it holds
// (GET, Range header). alive is false when the registry no longer knows
// the session; err is set only when the registry could not be asked.
func (c *client) uploadStatus(ctx context.Context, loc string, saved, size int64) (newLoc string, off int64, alive bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return "", 0, false, nil
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", 0, false, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return "", 0, false, transport.CheckError(resp, http.StatusNoContent)
	case resp.StatusCode >= 500:
		return "", 0, false, fmt.Errorf("asking for the upload status: %s", resp.Status)
	case resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK:
		return "", 0, false, nil
	}
	off, ok := parseRange(resp.Header.Get("Range"), saved)
	if !ok || off > size {
		return "", 0, false, nil
	}
	newLoc = loc
	if l := resp.Header.Get("Location"); l != "" {
		if newLoc, err = resolve(resp.Request.URL, l); err != nil {
			return "", 0, false, nil
		}
	}
	return newLoc, off, true, nil
}

// parseRange reads an upload's Range header ("0-<last byte>", or
// "bytes=0-<last>") into the number of bytes held. Distribution answers
// "0-0" for an empty upload too, so "0-0" means 0 when that is what was
// saved.
func parseRange(h string, saved int64) (int64, bool) {
	h = strings.TrimPrefix(strings.TrimSpace(h), "bytes=")
	start, end, ok := strings.Cut(h, "-")
	if !ok || start != "0" {
		return 0, false
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n == 0 && saved == 0 {
		return 0, true
	}
	return n + 1, true
}

// upload sends one blob from offset off to the session at loc.
type upload struct {
	c    *client
	st   *state
	key  string
	f    *os.File
	desc v1.Descriptor
	res  *BlobResult
	loc  string
	off  int64
	// sent counts the bytes handed to the transport.
	sent atomic.Int64
}

// run sends the rest of the blob; when a request fails, it asks the
// registry how much it kept and goes on from there, or starts over if the
// session is gone, up to Options.Retries times.
func (u *upload) run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := u.send(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt >= u.c.opts.Retries {
			return err
		}
		if !digestInvalid(err) && !retryable(err) {
			return err
		}
		u.c.opts.Logger.Debug("upload request failed", "blob", u.desc.Digest, "err", err)
		// Give the registry time to finish with a request that was cut
		// off before asking what it kept.
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
		if !digestInvalid(err) {
			loc, off, alive, serr := u.c.uploadStatus(ctx, u.loc, u.off, u.desc.Size)
			if serr != nil {
				return fmt.Errorf("%w (and asking for the upload status failed: %v; run the push again to resume)", err, serr)
			}
			if alive {
				u.loc, u.off = loc, off
				continue
			}
		}
		// The session is gone, or what the registry assembled does not
		// hash to the digest (bytes of an interrupted request got in):
		// start the blob over.
		_ = u.st.dropSession(u.key)
		loc, _, serr := u.c.startUpload(ctx, u.desc.Digest, "")
		if serr != nil {
			return fmt.Errorf("%w (and starting the upload over failed: %v)", err, serr)
		}
		u.loc, u.off = loc, 0
		u.res.Restarts++
		u.res.Status, u.res.ResumedAt = BlobUploaded, 0
	}
}

// digestInvalid reports a registry refusing the closing PUT because the
// uploaded bytes do not match the digest.
func digestInvalid(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusBadRequest {
		for _, d := range te.Errors {
			if d.Code == transport.DigestInvalidErrorCode {
				return true
			}
		}
	}
	return false
}

// retryable reports whether a failed upload request is worth another
// try: network failures and server errors, not refusals.
func retryable(err error) bool {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
			return false
		case http.StatusBadRequest:
			for _, d := range te.Errors {
				if d.Code == transport.DigestInvalidErrorCode || d.Code == transport.SizeInvalidErrorCode {
					return false
				}
			}
		}
		return true
	}
	return !errors.Is(err, errPlainHTTP)
}

func (u *upload) save() {
	err := u.st.saveSession(u.key, session{
		Registry: u.c.reg, Repository: u.c.repo, Digest: u.desc.Digest.String(), Size: u.desc.Size,
		Location: u.loc, Offset: u.off,
	})
	if err != nil {
		u.c.opts.Logger.Warn("saving the upload session (an interrupted push will start this blob over)", "err", err)
	}
}

// send uploads from u.off to the end and closes the upload: one PUT for
// a small blob sent whole, else PATCH chunks and an empty PUT.
func (u *upload) send(ctx context.Context) error {
	size, chunk := u.desc.Size, u.c.opts.ChunkSize
	if u.off == 0 && size <= chunk {
		return u.finish(ctx, 0, size)
	}
	u.save()
	for u.off < size {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted with %d of %d bytes of %s sent; run the push again to resume: %w", u.off, size, u.desc.Digest, err)
		}
		n := min(chunk, size-u.off)
		if err := u.patch(ctx, n); err != nil {
			return err
		}
		u.save()
	}
	return u.finish(ctx, size, 0)
}

// chunkGrace is how long an interrupted push (Ctrl-C, SIGTERM: the
// context is cancelled) still waits for the chunk in flight. A request
// cut off half way leaves the registry holding bytes its signed upload
// state does not count; distribution 2.8 then refuses every request of
// the session ("upload resumed at wrong offset"), including the status
// GET, and the blob has to start over. Letting the chunk end keeps the
// saved session valid, so the next push resumes after it.
const chunkGrace = 30 * time.Second

// graceful returns a context for one chunk request: it is not cancelled
// with ctx, only chunkGrace after it.
func graceful(ctx context.Context) (context.Context, context.CancelFunc) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(chunkGrace, cancel) })
	return rctx, func() { stop(); cancel() }
}

// body returns a reader of n bytes of the blob from off that counts what
// it hands out.
func (u *upload) body(off, n int64) (io.ReadCloser, func() (io.ReadCloser, error)) {
	mk := func() (io.ReadCloser, error) {
		return io.NopCloser(&iox.CountingReader{R: io.NewSectionReader(u.f, off, n), OnRead: func(d int64) {
			u.sent.Add(d)
			u.c.opts.Progress(d)
		}}), nil
	}
	rc, _ := mk()
	return rc, mk
}

// patch sends the next n bytes.
func (u *upload) patch(ctx context.Context, n int64) error {
	body, get := u.body(u.off, n)
	ctx, cancel := graceful(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, u.loc, body)
	if err != nil {
		return err
	}
	req.GetBody = get
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Content-Range", fmt.Sprintf("%d-%d", u.off, u.off+n-1))
	u.res.Requests++
	resp, err := u.c.do(req, http.StatusAccepted, http.StatusNoContent, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	end := u.off + n
	if r := resp.Header.Get("Range"); r != "" {
		got, ok := parseRange(r, -1)
		if !ok || got > end {
			return fmt.Errorf("registry answered a chunk ending at %d with Range %q", end, r)
		}
		end = got
	}
	if l := resp.Header.Get("Location"); l != "" {
		if u.loc, err = resolve(resp.Request.URL, l); err != nil {
			return err
		}
	}
	u.off = end
	return nil
}

// finish closes the upload with PUT ?digest=, carrying n bytes from off.
func (u *upload) finish(ctx context.Context, off, n int64) error {
	loc, err := url.Parse(u.loc)
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", u.desc.Digest.String())
	loc.RawQuery = q.Encode()
	var body io.ReadCloser
	var get func() (io.ReadCloser, error)
	if n > 0 {
		body, get = u.body(off, n)
		u.res.Requests++
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), body)
	if err != nil {
		return err
	}
	req.GetBody = get
	req.ContentLength = n
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := u.c.do(req, http.StatusCreated, http.StatusNoContent, http.StatusAccepted)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != u.desc.Digest.String() {
		return fmt.Errorf("registry stored %s as %s", u.desc.Digest, got)
	}
	u.off = u.desc.Size
	return nil
}
