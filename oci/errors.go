package oci

import (
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrNotFound is returned when a blob or a tag is not in the store.
var ErrNotFound = errors.New("not found in store")

// DigestMismatchError reports content that did not hash or count to what
// was expected.
type DigestMismatchError struct {
	WantDigest v1.Hash
	GotDigest  v1.Hash
	WantSize   int64
	GotSize    int64
}

func (e *DigestMismatchError) Error() string {
	if e.WantSize >= 0 && e.WantSize != e.GotSize {
		return fmt.Sprintf("size mismatch for %s: want %d bytes, got %d", e.WantDigest, e.WantSize, e.GotSize)
	}
	return fmt.Sprintf("digest mismatch: want %s, got %s", e.WantDigest, e.GotDigest)
}
