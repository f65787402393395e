package remote

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// StateDir is the directory under the store root where remote keeps its
// records (blobs.json, uploads/).
const StateDir = "remote"

// Bounds on the records, so they stay small however much is pushed.
const (
	maxKnownPerRegistry = 20000
	maxReposPerBlob     = 8
	maxStateFile        = 16 << 20
)

// state is remote's directory under the store root.
type state struct {
	dir string
}

func openState(s *oci.Store) (*state, error) {
	dir := filepath.Join(s.Root(), StateDir)
	if err := os.MkdirAll(filepath.Join(dir, "uploads"), 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	return &state{dir: dir}, nil
}

// lockFile takes an exclusive flock on path (created if needed) and
// returns its release, which removes the file if remove is set.
func lockFile(path string, remove bool) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() {
		if remove {
			// A process waiting on the removed file gets a lock nobody
			// else will contend for; the worst outcome is one blob
			// uploaded twice, which registries deduplicate.
			_ = os.Remove(path)
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxStateFile)
	}
	return b, nil
}

// session is an upload in progress: where the registry accepts the next
// chunk and how many bytes it has accepted.
type session struct {
	Registry   string    `json:"registry"`
	Repository string    `json:"repository"`
	Digest     string    `json:"digest"`
	Size       int64     `json:"size"`
	Location   string    `json:"location"`
	Offset     int64     `json:"offset"`
	Updated    time.Time `json:"updated"`
}

// sessionKey names the session file of one blob pushed to one repository.
func sessionKey(reg, repo string, h v1.Hash) string {
	sum := sha256.Sum256([]byte(reg + "/" + repo + "@" + h.String()))
	return hex.EncodeToString(sum[:20])
}

func (s *state) sessionPath(key string) string {
	return filepath.Join(s.dir, "uploads", key+".json")
}

// lockSession serialises pushes of the same blob to the same repository
// by several bb processes.
func (s *state) lockSession(key string) (func(), error) {
	return lockFile(filepath.Join(s.dir, "uploads", key+".lock"), true)
}

// loadSession returns the saved session, if one exists, matches and is
// recent enough to be worth asking about.
func (s *state) loadSession(key string, reg, repo string, h v1.Hash, size int64) (*session, bool) {
	b, err := readSmall(s.sessionPath(key))
	if err != nil {
		return nil, false
	}
	var ses session
	if json.Unmarshal(b, &ses) != nil || ses.Registry != reg || ses.Repository != repo || ses.Digest != h.String() ||
		ses.Size != size || ses.Offset < 0 || ses.Offset > size || ses.Location == "" || time.Since(ses.Updated) > sessionMaxAge {
		_ = s.dropSession(key)
		return nil, false
	}
	return &ses, true
}

func (s *state) saveSession(key string, ses session) error {
	ses.Updated = time.Now().UTC()
	b, err := json.Marshal(ses)
	if err != nil {
		return err
	}
	return oci.WriteFileAtomic(s.sessionPath(key), b, 0o600)
}

func (s *state) dropSession(key string) error {
	err := os.Remove(s.sessionPath(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// known is blobs.json: for each registry, the repositories known to hold
// each blob.
type known struct {
	Version    int                              `json:"version"`
	Registries map[string]map[string]*knownBlob `json:"registries"`
}

type knownBlob struct {
	Repos []string  `json:"repos"`
	Seen  time.Time `json:"seen"`
}

func (s *state) knownPath() string { return filepath.Join(s.dir, "blobs.json") }

func (s *state) readKnown() *known {
	k := &known{Version: 1, Registries: map[string]map[string]*knownBlob{}}
	b, err := readSmall(s.knownPath())
	if err != nil {
		return k
	}
	if json.Unmarshal(b, k) != nil || k.Registries == nil {
		return &known{Version: 1, Registries: map[string]map[string]*knownBlob{}}
	}
	return k
}

// mountSource returns a repository of reg other than repo known to hold
// h, or "".
func (s *state) mountSource(reg, repo string, h v1.Hash) string {
	kb := s.readKnown().Registries[reg][h.String()]
	if kb == nil {
		return ""
	}
	for _, r := range kb.Repos {
		if r != repo {
			return r
		}
	}
	return ""
}

// record notes that repo on reg holds blobs. The file is rewritten
// atomically under a lock; the oldest entries go when it grows too big.
func (s *state) record(reg, repo string, blobs []v1.Hash) error {
	unlock, err := lockFile(s.knownPath()+".lock", false)
	if err != nil {
		return err
	}
	defer unlock()
	k := s.readKnown()
	m := k.Registries[reg]
	if m == nil {
		m = map[string]*knownBlob{}
		k.Registries[reg] = m
	}
	now := time.Now().UTC()
	for _, h := range blobs {
		kb := m[h.String()]
		if kb == nil {
			kb = &knownBlob{}
			m[h.String()] = kb
		}
		repos := []string{repo}
		for _, r := range kb.Repos {
			if r != repo && len(repos) < maxReposPerBlob {
				repos = append(repos, r)
			}
		}
		kb.Repos, kb.Seen = repos, now
	}
	if len(m) > maxKnownPerRegistry {
		keys := make([]string, 0, len(m))
		for d := range m {
			keys = append(keys, d)
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]].Seen.After(m[keys[j]].Seen) })
		for _, d := range keys[maxKnownPerRegistry:] {
			delete(m, d)
		}
	}
	b, err := json.Marshal(k)
	if err != nil {
		return err
	}
	return oci.WriteFileAtomic(s.knownPath(), b, 0o600)
}
