package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/bot-bottle/bb/oci"
)

// File names inside a bottle's state directory.
const (
	MetadataFile       = "metadata.json"
	CommittedImageFile = "committed-image"
	PreserveMarker     = "preserve"
	// ImportedMetadataFile keeps metadata.json exactly as it arrived
	// with an import or a pull, as data: bb never reads it back.
	ImportedMetadataFile = "metadata.imported.json"
	// DirSourceFile names the directory a dir bottle is snapshotted from.
	// Only this host's user writes it (bb commit --from-dir, bb resume
	// of a dir bottle); nothing that arrives from elsewhere does.
	DirSourceFile = "dir-source"
)

// hostFields are metadata.json fields that name things on the host the
// bottle came from. They are dropped from metadata that arrives from
// elsewhere (an import, a pull), so that it never steers this host.
var hostFields = []string{"cwd", "copy_cwd"}

// EnvHome overrides the default home (~/.bot-bottle).
const EnvHome = "BB_HOME"

// DefaultHome returns $BB_HOME, or ~/.bot-bottle.
func DefaultHome() string {
	if h := os.Getenv(EnvHome); h != "" {
		return h
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".bot-bottle")
	}
	return ".bot-bottle"
}

// Metadata is metadata.json, as the bot-bottle launcher writes it.
// Unknown fields are kept when bb rewrites the file.
type Metadata struct {
	Identity  string `json:"identity"`
	AgentName string `json:"agent_name"`
	Cwd       string `json:"cwd"`
	CopyCwd   bool   `json:"copy_cwd"`
	StartedAt string `json:"started_at"`
	// Backend is "docker", "macos-container" or "smolmachines"; "" means docker.
	Backend string `json:"backend"`
}

var slugRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,99}$`)

// ValidSlug reports whether slug is a usable bottle slug: it names a
// directory under state/ and a tag in the store, so no path separators.
func ValidSlug(slug string) error {
	if !slugRE.MatchString(slug) || strings.Contains(slug, "..") {
		return fmt.Errorf("invalid slug %q: use lowercase letters, digits, '.', '_' and '-' (at most 100 characters; image names must be lowercase)", slug)
	}
	return nil
}

// Home is the root of bb's and the launcher's files.
type Home struct {
	Dir string
}

// StateDir returns <home>/state/<slug>.
func (h Home) StateDir(slug string) string { return filepath.Join(h.Dir, "state", slug) }

// StoreDir returns the default store location, <home>/oci.
func (h Home) StoreDir() string { return filepath.Join(h.Dir, "oci") }

// ReadMetadata reads a bottle's metadata.json; it returns (nil, nil) when
// the file does not exist.
func (h Home) ReadMetadata(slug string) (*Metadata, error) {
	if err := ValidSlug(slug); err != nil {
		return nil, err
	}
	b, err := readSmall(filepath.Join(h.StateDir(slug), MetadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", filepath.Join(h.StateDir(slug), MetadataFile), err)
	}
	return &m, nil
}

// RawMetadata returns metadata.json's bytes, or nil if absent.
func (h Home) RawMetadata(slug string) ([]byte, error) {
	if err := ValidSlug(slug); err != nil {
		return nil, err
	}
	b, err := readSmall(filepath.Join(h.StateDir(slug), MetadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// WriteRawMetadata writes metadata.json from raw bytes (from an import or
// a pull), after checking that it parses. The identity field is set to slug.
func (h Home) WriteRawMetadata(slug string, raw []byte) error {
	if err := ValidSlug(slug); err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("bottle metadata is not a JSON object: %w", err)
	}
	fields["identity"] = slug
	b, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return err
	}
	if err := h.mkdirState(slug); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	return oci.WriteFileAtomic(filepath.Join(h.StateDir(slug), MetadataFile), append(b, '\n'), oci.FileMode)
}

// WriteImportedMetadata restores metadata.json that arrived with a
// snapshot (an import, a pull): raw is kept as it came in
// metadata.imported.json, and metadata.json gets its fields without
// the ones that name host paths (cwd, copy_cwd, when set), identity set
// to slug.
func (h Home) WriteImportedMetadata(slug string, raw []byte) error {
	if err := ValidSlug(slug); err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("bottle metadata is not a JSON object: %w", err)
	}
	if fields == nil {
		return errors.New("bottle metadata is not a JSON object: null")
	}
	for _, k := range hostFields {
		// Empty ones ("", false) name nothing and stay, so that the same
		// metadata imported twice gives the same bytes.
		if v, ok := fields[k]; ok && v != "" && v != false && v != nil {
			delete(fields, k)
		}
	}
	clean, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(h.StateDir(slug), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	if err := oci.WriteFileAtomic(filepath.Join(h.StateDir(slug), ImportedMetadataFile), raw, 0o600); err != nil {
		return err
	}
	return h.WriteRawMetadata(slug, clean)
}

// DirSource returns the directory recorded for dir bottle slug, or ""
// when none was recorded.
func (h Home) DirSource(slug string) (string, error) {
	if err := ValidSlug(slug); err != nil {
		return "", err
	}
	b, err := readSmall(filepath.Join(h.StateDir(slug), DirSourceFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	p := string(bytes.TrimSuffix(b, []byte("\n")))
	if !filepath.IsAbs(p) || strings.ContainsAny(p, "\n\x00") {
		return "", fmt.Errorf("%s does not hold an absolute path", filepath.Join(h.StateDir(slug), DirSourceFile))
	}
	return p, nil
}

// WriteDirSource records dir (absolute) as the directory of dir bottle
// slug. Only call it with a directory this host's user named.
func (h Home) WriteDirSource(slug, dir string) error {
	if err := ValidSlug(slug); err != nil {
		return err
	}
	if !filepath.IsAbs(dir) || strings.ContainsAny(dir, "\n\x00") {
		return fmt.Errorf("dir bottle source %q is not an absolute path", dir)
	}
	if err := os.MkdirAll(h.StateDir(slug), 0o700); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	return oci.WriteFileAtomic(filepath.Join(h.StateDir(slug), DirSourceFile), []byte(dir+"\n"), 0o600)
}

// SetBackend makes metadata.json name backend, keeping its other fields
// (writing a new one with identity slug if there is none). "" and
// "docker" name the same backend and are left as they are.
func (h Home) SetBackend(slug, backend string) error {
	raw, err := h.RawMetadata(slug)
	if err != nil {
		return err
	}
	var fields map[string]any
	if raw == nil || json.Unmarshal(raw, &fields) != nil || fields == nil {
		return h.WriteMetadata(slug, Metadata{Identity: slug, Backend: backend})
	}
	cur, _ := fields["backend"].(string)
	if cur == backend || (cur == "" && backend == "docker") {
		return nil
	}
	fields["backend"] = backend
	b, err := json.Marshal(fields)
	if err != nil {
		return err
	}
	return h.WriteRawMetadata(slug, b)
}

// WriteMetadata writes metadata.json.
func (h Home) WriteMetadata(slug string, m Metadata) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return h.WriteRawMetadata(slug, b)
}

// CommittedImage returns the committed-image line, or "" when none.
func (h Home) CommittedImage(slug string) (string, error) {
	if err := ValidSlug(slug); err != nil {
		return "", err
	}
	b, err := readSmall(filepath.Join(h.StateDir(slug), CommittedImageFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// RecordCommit writes committed-image and the preserve marker. Both are
// written atomically; committed-image last-but-one so that a crash leaves
// either the old reference or the new one.
func (h Home) RecordCommit(slug, ref string) error {
	_, err := h.recordCommit(slug, ref)
	return err
}

// recordCommit is RecordCommit; it returns committed-image as it was
// right after the write.
func (h Home) recordCommit(slug, ref string) (os.FileInfo, error) {
	if err := ValidSlug(slug); err != nil {
		return nil, err
	}
	if strings.ContainsAny(ref, "\n\r") || strings.TrimSpace(ref) == "" {
		return nil, fmt.Errorf("invalid committed reference %q", ref)
	}
	dir := h.StateDir(slug)
	if err := h.mkdirState(slug); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", dir, err)
	}
	p := filepath.Join(dir, CommittedImageFile)
	if err := oci.WriteFileAtomic(p, []byte(ref+"\n"), oci.FileMode); err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	return fi, h.MarkPreserved(slug)
}

// MarkPreserved writes the preserve marker.
func (h Home) MarkPreserved(slug string) error {
	if err := h.mkdirState(slug); err != nil {
		return fmt.Errorf("creating state directory: %w", err)
	}
	return oci.WriteFileAtomic(filepath.Join(h.StateDir(slug), PreserveMarker), []byte("committed\n"), oci.FileMode)
}

// Preserved reports whether the preserve marker exists.
func (h Home) Preserved(slug string) bool {
	_, err := os.Stat(filepath.Join(h.StateDir(slug), PreserveMarker))
	return err == nil
}

// Slugs lists the slugs that have a state directory.
func (h Home) Slugs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(h.Dir, "state"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidSlug(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 1<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("%s is larger than 1 MiB", path)
	}
	return b, nil
}
