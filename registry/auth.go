package registry

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// realm is the basic-auth realm the registry announces.
const realm = "bb"

// maxHtpasswdSize bounds what ReadHtpasswd reads.
const maxHtpasswdSize = 1 << 20

// HashPassword returns the bcrypt hash of password, for Options.Credentials.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	b, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hashing password: %w", err)
	}
	return string(b), nil
}

// ReadHtpasswd parses an htpasswd file ("user:hash" lines, # comments)
// into Options.Credentials. Only bcrypt entries (htpasswd -B) are
// accepted: the other formats are weak or unsalted.
func ReadHtpasswd(r io.Reader) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(io.LimitReader(r, maxHtpasswdSize))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("htpasswd line %d: want user:hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("htpasswd line %d (user %q): only bcrypt entries are supported: make them with htpasswd -B", n, user)
		}
		out[user] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading htpasswd: %w", err)
	}
	if len(out) == 0 {
		return nil, errors.New("htpasswd file has no entries")
	}
	return out, nil
}

// basicAuth checks HTTP basic-auth credentials against bcrypt hashes.
// bcrypt is slow by design, and a pull makes dozens of requests, so a
// password that matched once is remembered (as its SHA-256, compared in
// constant time) for the life of the registry.
type basicAuth struct {
	users map[string][]byte
	// dummy is compared against when the user is unknown, so that the
	// response time does not tell which users exist.
	dummy []byte

	mu       sync.Mutex
	verified map[string][sha256.Size]byte
}

func newBasicAuth(creds map[string]string) (*basicAuth, error) {
	a := &basicAuth{users: map[string][]byte{}, verified: map[string][sha256.Size]byte{}}
	cost := bcrypt.DefaultCost
	users := make([]string, 0, len(creds))
	for u := range creds {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		h := []byte(creds[u])
		c, err := bcrypt.Cost(h)
		if err != nil {
			return nil, fmt.Errorf("credentials of user %q: not a bcrypt hash (make one with htpasswd -B or registry.HashPassword)", u)
		}
		if u == "" || strings.Contains(u, ":") {
			return nil, fmt.Errorf("invalid user name %q", u)
		}
		a.users[u] = h
		cost = c
	}
	pw := make([]byte, 16)
	_, _ = rand.Read(pw)
	d, err := bcrypt.GenerateFromPassword(pw, cost)
	if err != nil {
		return nil, err
	}
	a.dummy = d
	return a, nil
}

// check reports whether r carries valid credentials.
func (a *basicAuth) check(r *http.Request) bool {
	user, pw, ok := r.BasicAuth()
	if !ok {
		return false
	}
	sum := sha256.Sum256([]byte(pw))
	hash, known := a.users[user]
	if !known {
		_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(pw))
		return false
	}
	a.mu.Lock()
	prev, cached := a.verified[user]
	a.mu.Unlock()
	if cached && subtle.ConstantTimeCompare(prev[:], sum[:]) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pw)) != nil {
		return false
	}
	a.mu.Lock()
	a.verified[user] = sum
	a.mu.Unlock()
	return true
}
