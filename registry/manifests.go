package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types the registry accepts in a push; the store's GC follows
// exactly these.
var pushable = map[string]bool{
	string(types.OCIManifestSchema1):    true,
	string(types.DockerManifestSchema2): true,
	string(types.OCIImageIndex):         true,
	string(types.DockerManifestList):    true,
}

func isIndexType(mt string) bool {
	return mt == string(types.OCIImageIndex) || mt == string(types.DockerManifestList)
}

// manifestHead is what the registry reads of a manifest it serves.
type manifestHead struct {
	SchemaVersion int    `json:"schemaVersion"`
	MediaType     string `json:"mediaType"`
	ArtifactType  string `json:"artifactType"`
	Config        *struct {
		MediaType string `json:"mediaType"`
	} `json:"config"`
	Manifests json.RawMessage `json:"manifests"`
	Subject   *struct {
		Digest string `json:"digest"`
	} `json:"subject"`
	Annotations map[string]string `json:"annotations"`
	FSLayers    json.RawMessage   `json:"fsLayers"`
}

// manifestInfo is what the referrers API needs of a manifest.
type manifestInfo struct {
	mediaType    string
	artifactType string
	subject      string
	annotations  map[string]string
}

// parseManifestInfo reads b as a manifest. It returns nil if b is not
// one (a config or layer blob asked for as a manifest).
func parseManifestInfo(b []byte) *manifestInfo {
	var m manifestHead
	if err := json.Unmarshal(b, &m); err != nil {
		return nil
	}
	info := &manifestInfo{mediaType: m.MediaType, artifactType: m.ArtifactType, annotations: m.Annotations}
	if info.mediaType == "" {
		switch {
		case m.SchemaVersion == 2 && m.Manifests != nil:
			info.mediaType = string(types.OCIImageIndex)
		case m.SchemaVersion == 2 && m.Config != nil:
			info.mediaType = string(types.OCIManifestSchema1)
		case m.SchemaVersion == 1 && m.FSLayers != nil:
			info.mediaType = string(types.DockerManifestSchema1)
		default:
			return nil
		}
	}
	if info.artifactType == "" && m.Config != nil && !isIndexType(info.mediaType) {
		info.artifactType = m.Config.MediaType
	}
	if m.Subject != nil {
		info.subject = m.Subject.Digest
	}
	return info
}

// manifestCache remembers what parseManifestInfo found per digest
// (content-addressed, so never stale), up to a bound.
type manifestCache struct {
	mu  sync.Mutex
	max int
	m   map[v1.Hash]*manifestInfo
}

func newManifestCache(max int) *manifestCache {
	return &manifestCache{max: max, m: map[v1.Hash]*manifestInfo{}}
}

// info returns the manifest information of blob d, nil if d is not a
// manifest.
func (h *handler) info(ctx context.Context, d v1.Hash) (*manifestInfo, []byte, error) {
	c := h.subjects
	c.mu.Lock()
	info, ok := c.m[d]
	c.mu.Unlock()
	if ok {
		return info, nil, nil
	}
	b, err := h.readManifest(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	info = parseManifestInfo(b)
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[d] = info
	c.mu.Unlock()
	return info, b, nil
}

// errNotManifest marks a blob too large to be a manifest.
var errNotManifest = errors.New("not a manifest")

// readManifest reads blob d whole, refusing blobs over oci.MaxManifestSize.
func (h *handler) readManifest(ctx context.Context, d v1.Hash) ([]byte, error) {
	n, err := h.store.Stat(ctx, d)
	if err != nil {
		return nil, err
	}
	if n > oci.MaxManifestSize {
		return nil, errNotManifest
	}
	return h.store.ReadBlob(ctx, d, oci.MaxManifestSize)
}

func (h *handler) view(ctx context.Context) (*view, *regError) {
	idx, err := h.store.Index(ctx)
	if err != nil {
		return nil, internal("reading the store's index", err)
	}
	return newView(idx), nil
}

func nameUnknown(rt route) *regError {
	msg := "repository " + quote(rt.repo) + " is not in this registry (see bb list)"
	if rt.slug != rt.repo {
		msg = "repository " + quote(rt.repo) + " (store name " + quote(rt.slug) + ") is not in this registry (see bb list)"
	}
	e := newError(404, codeNameUnknown, msg)
	e.Detail = map[string]string{"name": rt.repo}
	return e
}

func manifestUnknown(repo, ref string) *regError {
	e := newError(404, codeManifestUnknown, "manifest "+quote(repo+refSep(ref)+ref)+" is not in this registry (see bb list)")
	e.Detail = map[string]string{"name": repo, "reference": ref}
	return e
}

func refSep(ref string) string {
	if strings.Contains(ref, ":") {
		return "@"
	}
	return ":"
}

func (h *handler) getManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) *regError {
	repo, ref := rt.repo, rt.ref
	var d v1.Hash
	if strings.Contains(ref, ":") {
		var e *regError
		if d, e = parseDigest(ref); e != nil {
			return e
		}
	} else {
		if oci.ValidTag(ref) != nil {
			return manifestUnknown(repo, ref)
		}
		v, e := h.view(ctx)
		if e != nil {
			return e
		}
		tags, ok := v.repos[rt.slug]
		if !ok {
			return nameUnknown(rt)
		}
		desc, ok := tags[ref]
		if !ok {
			return manifestUnknown(repo, ref)
		}
		d = desc.Digest
	}
	b, err := h.readManifest(ctx, d)
	if errors.Is(err, oci.ErrNotFound) || errors.Is(err, errNotManifest) {
		return manifestUnknown(repo, ref)
	}
	if err != nil {
		return internal("reading manifest", err)
	}
	info := parseManifestInfo(b)
	if info == nil {
		return manifestUnknown(repo, ref)
	}
	if !accepts(r, info.mediaType) {
		e := newError(404, codeManifestUnknown, fmt.Sprintf("manifest %s is a %s, which the client's Accept header leaves out", quote(repo+refSep(ref)+ref), info.mediaType))
		e.Detail = map[string]string{"mediaType": info.mediaType}
		return e
	}
	hd := w.Header()
	hd.Set("Content-Type", info.mediaType)
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	hd.Set("Docker-Content-Digest", d.String())
	hd.Set("ETag", `"`+d.String()+`"`)
	w.WriteHeader(200)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
	return nil
}

// accepts reports whether the request's Accept headers allow media type
// mt. A request that names no manifest type (no Accept, */*, or only
// generic types) accepts every manifest; one that lists manifest types
// accepts only those (Docker Hub answers the same way: 404
// MANIFEST_UNKNOWN).
func accepts(r *http.Request, mt string) bool {
	listed := false
	for _, v := range r.Header.Values("Accept") {
		for _, part := range strings.Split(v, ",") {
			t, _, _ := strings.Cut(part, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			switch {
			case t == "":
			case t == mt || t == "*/*" || t == "application/*":
				return true
			case strings.HasPrefix(t, "application/vnd."):
				listed = true
			}
		}
	}
	return !listed
}

// listParams parses the n and last query parameters of a list request.
func listParams(r *http.Request) (n int, last string, e *regError) {
	q := r.URL.Query()
	n = -1
	if s := q.Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			return 0, "", newError(400, "PAGINATION_NUMBER_INVALID", "invalid n="+quote(s)+": want a number ≥ 0")
		}
		n = v
	}
	return n, q.Get("last"), nil
}

// writeList sends one page of a list, with a Link header to the next page.
func writeList(w http.ResponseWriter, r *http.Request, all []string, n int, last string, body func([]string) any) *regError {
	out, more := page(all, n, last)
	if out == nil {
		out = []string{}
	}
	if more && len(out) > 0 {
		q := url.Values{"n": {strconv.Itoa(n)}, "last": {out[len(out)-1]}}
		w.Header().Set("Link", "<"+r.URL.Path+"?"+q.Encode()+`>; rel="next"`)
	}
	return writeJSON(w, r, 200, "application/json", body(out))
}

func (h *handler) tagsList(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) *regError {
	n, last, e := listParams(r)
	if e != nil {
		return e
	}
	v, e := h.view(ctx)
	if e != nil {
		return e
	}
	all := v.tags(rt.slug)
	if len(all) == 0 {
		return nameUnknown(rt)
	}
	return writeList(w, r, all, n, last, func(tags []string) any {
		return struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}{rt.repo, tags}
	})
}

func (h *handler) catalog(ctx context.Context, w http.ResponseWriter, r *http.Request) *regError {
	n, last, e := listParams(r)
	if e != nil {
		return e
	}
	v, e := h.view(ctx)
	if e != nil {
		return e
	}
	return writeList(w, r, v.repositories(), n, last, func(repos []string) any {
		return struct {
			Repositories []string `json:"repositories"`
		}{repos}
	})
}

// referrer is one entry of a referrers response.
type referrer struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// referrers answers the referrers API: an image index of the manifests
// in the store's index.json whose subject is ref.
func (h *handler) referrers(ctx context.Context, w http.ResponseWriter, r *http.Request, repo, ref string) *regError {
	d, e := parseDigest(ref)
	if e != nil {
		return e
	}
	idx, err := h.store.Index(ctx)
	if err != nil {
		return internal("reading the store's index", err)
	}
	filter := r.URL.Query().Get("artifactType")
	out := []referrer{}
	seen := map[v1.Hash]bool{}
	for _, m := range idx.Manifests {
		if seen[m.Digest] || !pushable[string(m.MediaType)] {
			continue
		}
		seen[m.Digest] = true
		if s := m.Annotations[oci.SubjectAnnotation]; s != "" && s != d.String() {
			continue
		}
		info, _, err := h.info(ctx, m.Digest)
		if err != nil {
			h.log.Warn("reading manifest for the referrers API", "digest", m.Digest, "err", err)
			continue
		}
		if info == nil || info.subject != d.String() || (filter != "" && info.artifactType != filter) {
			continue
		}
		out = append(out, referrer{MediaType: info.mediaType, Digest: m.Digest.String(), Size: m.Size,
			ArtifactType: info.artifactType, Annotations: info.annotations})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	return writeJSON(w, r, 200, string(types.OCIImageIndex), struct {
		SchemaVersion int        `json:"schemaVersion"`
		MediaType     string     `json:"mediaType"`
		Manifests     []referrer `json:"manifests"`
	}{2, string(types.OCIImageIndex), out})
}

// pushedManifest is what the registry checks in a pushed manifest.
type pushedManifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	ArtifactType  string            `json:"artifactType"`
	Config        *v1.Descriptor    `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Manifests     []v1.Descriptor   `json:"manifests"`
	Subject       *v1.Descriptor    `json:"subject"`
	Annotations   map[string]string `json:"annotations"`
}

// putManifest stores a pushed manifest after checking that every blob
// (or child manifest) it references is in the store, then tags it (push
// by tag) or records it as a referrer (push by digest with a subject).
func (h *handler) putManifest(ctx context.Context, w http.ResponseWriter, r *http.Request, rt route) *regError {
	repo, ref := rt.repo, rt.ref
	byDigest := strings.Contains(ref, ":")
	var want v1.Hash
	var tags []string // the tags to point at the manifest
	if byDigest {
		var e *regError
		if want, e = parseDigest(ref); e != nil {
			return e
		}
		// A push by digest may name tags too (?tag=a&tag=b).
		tags = r.URL.Query()["tag"]
	} else {
		tags = []string{ref}
	}
	for _, t := range tags {
		if e := validTagFor(repo, rt.slug, t); e != nil {
			return e
		}
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, oci.MaxManifestSize+1))
	if err != nil {
		return newError(400, codeManifestInvalid, "reading manifest: "+err.Error())
	}
	if len(b) > oci.MaxManifestSize {
		return newError(413, codeSizeInvalid, fmt.Sprintf("manifest is larger than %d bytes", oci.MaxManifestSize))
	}
	mt, m, e := h.checkManifest(ctx, r, b)
	if e != nil {
		return e
	}
	// A manifest pushed by digest is checked here (Ingest trusts a digest
	// the store already has) and stored under that digest's algorithm,
	// sha512 too; one pushed by tag under sha256.
	if byDigest {
		if got := digestBytes(want.Algorithm, b); got != want {
			e := newError(400, codeDigestInvalid, fmt.Sprintf("manifest digest is %s, not %s as the URL says", got, want))
			e.Detail = map[string]string{"digest": got.String()}
			return e
		}
	}
	got, n, err := h.store.Ingest(ctx, bytes.NewReader(b), want, int64(len(b)))
	if err != nil {
		return internal("storing manifest", err)
	}
	desc := v1.Descriptor{MediaType: types.MediaType(mt), Digest: got, Size: n}
	desc.ArtifactType = m.ArtifactType
	desc.Annotations = map[string]string{}
	if m.Subject != nil {
		desc.Annotations[oci.SubjectAnnotation] = m.Subject.Digest.String()
	}
	if byDigest && m.Subject != nil {
		if err := h.recordReferrer(ctx, desc); err != nil {
			return internal("recording referrer", err)
		}
	}
	if len(tags) > 0 {
		desc.Annotations[oci.SlugAnnotation] = rt.slug
		for _, k := range []string{oci.CreatedAnnotation, oci.BackendAnnotation, oci.SourceAnnotation, oci.BaseImageAnnotation} {
			if v, ok := m.Annotations[k]; ok {
				desc.Annotations[k] = v
			}
		}
		if desc.Annotations[oci.CreatedAnnotation] == "" {
			desc.Annotations[oci.CreatedAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
		}
	}
	for _, t := range tags {
		if e := h.tag(ctx, repo, rt.slug, t, desc); e != nil {
			return e
		}
		if t == latestTag {
			// A push of the current snapshot is a snapshot like a commit: it
			// gets a history tag, so bb list shows it at once.
			res := &snapshot.Result{Slug: rt.slug, Tag: snapshot.Tag(rt.slug), TimeTag: snapshot.TimeTag(rt.slug, time.Now()), Manifest: desc}
			if err := snapshot.Publish(ctx, h.store, res, -1); err != nil {
				return internal("recording the pushed snapshot's history tag", err)
			}
		}
		if byDigest {
			w.Header().Add("OCI-Tag", t)
		}
	}
	hd := w.Header()
	hd.Set("Location", location(repo, "manifests", desc.Digest.String()))
	hd.Set("Docker-Content-Digest", desc.Digest.String())
	if m.Subject != nil {
		hd.Set("OCI-Subject", m.Subject.Digest.String())
	}
	hd.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkManifest parses a pushed manifest, works out its media type and
// checks its references.
func (h *handler) checkManifest(ctx context.Context, r *http.Request, b []byte) (string, *pushedManifest, *regError) {
	var m pushedManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return "", nil, newError(400, codeManifestInvalid, "manifest is not valid: "+err.Error())
	}
	if m.SchemaVersion != 2 {
		return "", nil, newError(400, codeManifestInvalid, fmt.Sprintf("manifest schemaVersion is %d: only schema 2 is supported", m.SchemaVersion))
	}
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	ct = strings.TrimSpace(ct)
	mt := m.MediaType
	switch {
	case mt != "" && ct != "" && pushable[ct] && ct != mt:
		return "", nil, newError(400, codeManifestInvalid, fmt.Sprintf("Content-Type %s does not match the manifest's mediaType %s", ct, mt))
	case mt == "" && pushable[ct]:
		mt = ct
	case mt == "" && m.Manifests != nil:
		mt = string(types.OCIImageIndex)
	case mt == "":
		mt = string(types.OCIManifestSchema1)
	}
	if !pushable[mt] {
		return "", nil, newError(415, codeManifestInvalid, "manifest media type "+quote(mt)+" is not supported: push OCI or Docker schema 2 manifests and indexes")
	}
	var refs []v1.Descriptor
	if isIndexType(mt) {
		if m.Config != nil || len(m.Layers) > 0 {
			return "", nil, newError(400, codeManifestInvalid, "an index has no config or layers")
		}
		refs = m.Manifests
	} else {
		if m.Config == nil || m.Manifests != nil {
			return "", nil, newError(400, codeManifestInvalid, "an image manifest needs a config and no manifests list")
		}
		refs = append([]v1.Descriptor{*m.Config}, m.Layers...)
	}
	for _, d := range refs {
		if err := oci.ValidHash(d.Digest); err != nil {
			return "", nil, newError(400, codeManifestInvalid, err.Error())
		}
		n, err := h.store.Stat(ctx, d.Digest)
		if errors.Is(err, oci.ErrNotFound) {
			if len(d.URLs) > 0 {
				continue // a foreign layer, fetched from its URLs
			}
			e := newError(400, codeManifestBlobUnknown, "manifest references "+d.Digest.String()+", which is not in this registry: push it first")
			e.Detail = map[string]string{"digest": d.Digest.String()}
			return "", nil, e
		}
		if err != nil {
			return "", nil, internal("checking a referenced blob", err)
		}
		if n != d.Size {
			return "", nil, newError(400, codeManifestInvalid, fmt.Sprintf("manifest says %s has %d bytes; it has %d", d.Digest, d.Size, n))
		}
	}
	if m.Subject != nil {
		if err := oci.ValidHash(m.Subject.Digest); err != nil {
			return "", nil, newError(400, codeManifestInvalid, "subject: "+err.Error())
		}
	}
	return mt, &m, nil
}

// tag points the store tag of repo:tag at desc, unless that store tag
// belongs to another repository (a tag of slug "a" must not overwrite
// slug "a-b"'s snapshot). The check and the update happen under the
// store's index lock.
func (h *handler) tag(ctx context.Context, repo, slug, tag string, desc v1.Descriptor) *regError {
	st := storeTag(slug, tag)
	var taken string
	err := h.store.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		if owner, ok := newView(idx).owner[st]; ok && owner != slug {
			taken = owner
			return errTaken
		}
		kept := idx.Manifests[:0]
		for _, m := range idx.Manifests {
			if m.Annotations[oci.RefNameAnnotation] != st {
				kept = append(kept, m)
			}
		}
		d := desc
		d.Annotations = map[string]string{oci.RefNameAnnotation: st}
		for k, v := range desc.Annotations {
			d.Annotations[k] = v
		}
		idx.Manifests = append(kept, d)
		return nil
	})
	if errors.Is(err, errTaken) {
		what := "another repository's"
		if taken != "" {
			what = "repository " + quote(repoName(taken)) + "'s"
		}
		return newError(403, codeDenied, fmt.Sprintf("%s:%s would replace store tag %s, which is %s: push under another tag", repo, tag, quote(st), what))
	}
	if err != nil {
		return internal("tagging manifest", err)
	}
	return nil
}

var errTaken = errors.New("store tag taken")

// recordReferrer adds desc, a manifest with a subject pushed by digest,
// to index.json without a tag: the referrers API finds it there and GC
// keeps it.
func (h *handler) recordReferrer(ctx context.Context, desc v1.Descriptor) error {
	return h.store.UpdateIndex(ctx, func(idx *v1.IndexManifest) error {
		for _, m := range idx.Manifests {
			if m.Digest == desc.Digest && m.Annotations[oci.RefNameAnnotation] == "" {
				return nil
			}
		}
		idx.Manifests = append(idx.Manifests, desc)
		return nil
	})
}

// digestBytes returns the digest of b with algorithm alg (sha256 or
// sha512, as parseDigest allows).
func digestBytes(alg string, b []byte) v1.Hash {
	if alg == "sha512" {
		sum := sha512.Sum512(b)
		return v1.Hash{Algorithm: alg, Hex: hex.EncodeToString(sum[:])}
	}
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}
