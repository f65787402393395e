package registry

import (
	"bytes"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
)

// FuzzNames checks the repository name mapping: every name storeName
// accepts maps onto a slug whose store tags are valid and which maps back
// to the same name, and every slug repoName serves maps back to itself.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"demo", "team/app", "a/b/c", "a__b/c", "a___b", "a____b", "a-b", "a--b/c.d",
		"A/b", "a//b", "/a", "a/", "a_.b", "a..b", strings.Repeat("ab/", 40) + "c", "x___", "___x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if slug, e := storeName(s); e == nil {
			if err := state.ValidSlug(slug); err != nil {
				t.Fatalf("storeName(%q) = %q, not a slug: %v", s, slug, err)
			}
			if err := oci.ValidTag(storeTag(slug, latestTag)); err != nil {
				t.Fatalf("storeName(%q) = %q, not a store tag: %v", s, slug, err)
			}
			if back := repoName(slug); back != s {
				t.Fatalf("repoName(storeName(%q)) = %q", s, back)
			}
		} else if e.Status != 400 && e.Status != 404 {
			t.Fatalf("storeName(%q): status %d", s, e.Status)
		}
		if r := repoName(s); r != "" {
			if slug, e := storeName(r); e != nil || slug != s {
				t.Fatalf("storeName(repoName(%q)) = %q, %v", s, slug, e)
			}
		}
	})
}

// FuzzParsePath checks that every route parsePath finds names a
// repository that the path really holds.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/_catalog", "/v2/a/b/manifests/latest", "/v2/a/blobs/uploads/", "/v2/a/blobs/uploads/x",
		"/v2/blobs/blobs/blobs/x", "/v2/a/tags/list", "/v2/a/referrers/sha256:x", "/v2//manifests/x", "/v3/a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		rt, ok := parsePath(p)
		if !ok || rt.kind == "base" || rt.kind == "catalog" {
			return
		}
		if !strings.HasPrefix(p, "/v2/"+rt.repo+"/") {
			t.Fatalf("parsePath(%q) = %+v: repository not at the start", p, rt)
		}
	})
}

var simpleRange = regexp.MustCompile(`^bytes=(\d*)-(\d*)$`)

// FuzzRange serves a blob with a fuzzed Range header through the same path
// as getBlob (clampRange, then http.ServeContent) and checks a single
// range against RFC 9110 computed with unbounded integers: a last
// position past the end, however large, is the end.
func FuzzRange(f *testing.F) {
	for _, s := range []string{"bytes=0-18446744073709551615", "bytes=0-", "bytes=-5", "bytes=-18446744073709551616",
		"bytes=5-2", "bytes=999999999999999999999-", "bytes=0-0,2-3", "bytes=1-99999999999999999999,0-0", "items=0-1", "bytes=100-200"} {
		f.Add(s, uint16(100))
	}
	f.Fuzz(func(t *testing.T, h string, n uint16) {
		size := int64(n % 4096)
		c := clampRange(h)
		if clampRange(c) != c {
			t.Fatalf("clampRange(%q) = %q is not a fixed point", h, c)
		}
		blob := bytes.Repeat([]byte("0123456789abcdef"), int(size)/16+1)[:size]
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Range", c)
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", time.Time{}, bytes.NewReader(blob))
		m := simpleRange.FindStringSubmatch(h)
		if m == nil || (m[1] == "" && m[2] == "") || size == 0 {
			return // not one plain range, or an empty blob: ServeContent's own answer
		}
		body, _ := io.ReadAll(rec.Body)
		first, last := new(big.Int), new(big.Int)
		sz := big.NewInt(size)
		var start, end int64 // the expected bytes [start, end)
		switch {
		case m[1] == "": // a suffix
			last.SetString(m[2], 10)
			if last.Sign() == 0 {
				return // nothing to send: ServeContent's answer is its own
			}
			if last.Cmp(sz) >= 0 {
				start = 0
			} else {
				start = size - last.Int64()
			}
			end = size
		default:
			first.SetString(m[1], 10)
			if first.Cmp(sz) >= 0 {
				if rec.Code != http.StatusRequestedRangeNotSatisfiable {
					t.Fatalf("Range %q of %d bytes: %d, want 416", h, size, rec.Code)
				}
				return
			}
			start, end = first.Int64(), size
			if m[2] != "" {
				last.SetString(m[2], 10)
				if last.Cmp(first) < 0 {
					return // invalid: ServeContent's answer is its own
				}
				if last.Cmp(sz) < 0 {
					end = last.Int64() + 1
				}
			}
		}
		if rec.Code != http.StatusPartialContent && !(start == 0 && end == size && rec.Code == http.StatusOK) {
			t.Fatalf("Range %q (sent %q) of %d bytes: status %d, want 206", h, c, size, rec.Code)
		}
		if !bytes.Equal(body, blob[start:end]) {
			t.Fatalf("Range %q (sent %q) of %d bytes: %d bytes, want [%d, %d)", h, c, size, len(body), start, end)
		}
	})
}

// FuzzManifestInfo checks that any bytes read as a manifest give either
// nothing or a manifest with a media type, without panicking.
func FuzzManifestInfo(f *testing.F) {
	for _, s := range []string{`{"schemaVersion":2,"config":{"mediaType":"x"}}`, `{"schemaVersion":2,"manifests":[]}`,
		`{"schemaVersion":1,"fsLayers":[]}`, `{"schemaVersion":2,"subject":{"digest":"sha256:x"},"mediaType":"m"}`, `[]`, `null`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if info := parseManifestInfo(b); info != nil && info.mediaType == "" {
			t.Fatalf("manifest %q without a media type", b)
		}
	})
}
