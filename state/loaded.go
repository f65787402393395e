package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bot-bottle/bb/oci"
)

// LoadedFile is bb's own record, not shared with the launcher, of the
// snapshot it last loaded into the runtime for a slug and of the
// committed-image file as it left it then.
const LoadedFile = "bb-loaded"

// Loaded is the content of LoadedFile.
type Loaded struct {
	// Ref is what bb wrote into committed-image.
	Ref string `json:"ref"`
	// Digest is the manifest digest of the snapshot bb loaded under Ref;
	// "" when bb recorded Ref without loading anything (an import or a
	// pull without loading).
	Digest string `json:"digest,omitempty"`
	// Image is what the runtime said the reference named right after
	// (Docker: the image ID), when it can tell: a later change means
	// another tool replaced the image under the same name.
	Image string `json:"image,omitempty"`
	// ModTime (nanoseconds since the epoch) and Size are committed-image's
	// right after bb wrote it: a later write by another tool changes them.
	ModTime int64 `json:"committed_image_mtime_ns"`
	Size    int64 `json:"committed_image_size"`
}

// ErrLoadRecord wraps a failure of RecordLoad to write LoadedFile once
// committed-image and the preserve marker are written: the commit is
// recorded, only bb's own record of it is stale.
var ErrLoadRecord = errors.New("writing bb's record of the load")

// RecordLoad is RecordCommit (committed-image names ref, preserve
// marker), followed by bb's record that ref holds the snapshot digest
// ("" when bb recorded ref without loading anything), that the runtime
// identifies it as image ("" when it cannot tell), and of committed-image
// as this write left it.
func (h Home) RecordLoad(slug, ref, digest, image string) error {
	fi, err := h.recordCommit(slug, ref)
	if err != nil {
		return err
	}
	b, err := json.Marshal(Loaded{Ref: ref, Digest: digest, Image: image, ModTime: fi.ModTime().UnixNano(), Size: fi.Size()})
	if err == nil {
		err = oci.WriteFileAtomic(filepath.Join(h.StateDir(slug), LoadedFile), append(b, '\n'), oci.FileMode)
	}
	if err != nil {
		return fmt.Errorf("%w %s: %w", ErrLoadRecord, filepath.Join(h.StateDir(slug), LoadedFile), err)
	}
	return nil
}

// LoadedRecord returns bb's record of what it last loaded for slug, or
// nil when there is none (state written by an older bb or by the
// launcher alone). current reports whether committed-image is still as
// bb left it then: same content, modification time and size. When it is
// not, another tool recorded a commit since.
func (h Home) LoadedRecord(slug string) (rec *Loaded, current bool, err error) {
	if err := ValidSlug(slug); err != nil {
		return nil, false, err
	}
	p := filepath.Join(h.StateDir(slug), LoadedFile)
	b, err := readSmall(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var l Loaded
	if err := json.Unmarshal(b, &l); err != nil || l.Ref == "" {
		return nil, false, fmt.Errorf("%s is not bb's record of a load (remove it: the next bb commit or resume writes it again)", p)
	}
	ci := filepath.Join(h.StateDir(slug), CommittedImageFile)
	fi, err := os.Stat(ci)
	if errors.Is(err, os.ErrNotExist) {
		return &l, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if fi.ModTime().UnixNano() != l.ModTime || fi.Size() != l.Size {
		return &l, false, nil
	}
	cur, err := readSmall(ci)
	if err != nil {
		return nil, false, err
	}
	return &l, strings.TrimSpace(string(cur)) == l.Ref, nil
}
