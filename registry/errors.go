package registry

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Error codes of the OCI distribution specification.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
	// codeRangeInvalid is distribution's code for an unsatisfiable Range
	// (the specification names only the status, 416).
	codeRangeInvalid = "RANGE_INVALID"
)

// regError is one error response: an HTTP status and a spec error code.
type regError struct {
	Status  int
	Code    string
	Message string
	Detail  any
}

func (e *regError) Error() string { return e.Code + ": " + e.Message }

func newError(status int, code, msg string) *regError {
	return &regError{Status: status, Code: code, Message: msg}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

// writeError sends e as the specification's JSON error body. HEAD
// responses carry the status and headers only, so the message also goes
// into a Warning header there, where a client's debug output shows it.
func writeError(w http.ResponseWriter, r *http.Request, e *regError) {
	b, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.Code, Message: e.Message, Detail: e.Detail}}})
	h := w.Header()
	h.Del("Docker-Content-Digest")
	h.Del("Accept-Ranges")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		h.Set("Warning", `199 bb "`+e.Code+": "+strings.Map(headerSafe, e.Message)+`"`)
	}
	w.WriteHeader(e.Status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// headerSafe maps a message's runes to what a quoted header value may
// hold: printable ASCII, no quotes or backslashes.
func headerSafe(r rune) rune {
	if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
		return '\''
	}
	return r
}
