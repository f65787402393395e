package docker

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Sources of an incremental snapshot's change list (Runtime.ChangeList).
const (
	// ChangesAuto reads the container's overlay2 upper directory where bb
	// can reach it, and asks the daemon otherwise.
	ChangesAuto = ""
	// ChangesDaemon always asks the daemon (GET /containers/{id}/changes)
	// and streams through tar in the bottle.
	ChangesDaemon = "daemon"
)

// errNoUpper says why the upper directory cannot stand in for the
// daemon's change list; the daemon is asked instead.
type errNoUpper struct{ why string }

func (e *errNoUpper) Error() string { return "the container's upper directory is not usable: " + e.why }

func noUpper(format string, args ...any) error { return &errNoUpper{why: fmt.Sprintf(format, args...)} }

// mountInfo is where the kernel lists this process's mounts.
const mountInfo = "/proc/self/mountinfo"

// upperLayer is a container's overlay2 upper directory as this process
// sees it.
type upperLayer struct {
	dir string
	// merged is the container's root filesystem (the overlay mount).
	merged string
	// xattr is the prefix of overlayfs's own xattrs: "trusted.overlay."
	// or, on mounts with userxattr, "user.overlay.".
	xattr string
}

// findUpper returns the container's writable overlay2 layer, if this
// process sees the very mount the container runs on: the daemon's
// GraphDriver data names the directories, and the mount table must show
// an overlay mount at MergedDir whose upperdir is UpperDir (so a daemon
// in another mount namespace, or on another host, is never trusted on a
// path that merely exists here).
func findUpper(ci container.InspectResponse) (*upperLayer, error) {
	if ci.GraphDriver.Name != "overlay2" {
		return nil, noUpper("storage driver %q", ci.GraphDriver.Name)
	}
	upper, merged := ci.GraphDriver.Data["UpperDir"], ci.GraphDriver.Data["MergedDir"]
	if !filepath.IsAbs(upper) || !filepath.IsAbs(merged) || filepath.Clean(upper) != upper || filepath.Clean(merged) != merged {
		return nil, noUpper("GraphDriver data names %q and %q", upper, merged)
	}
	f, err := os.Open(mountInfo)
	if err != nil {
		return nil, noUpper("%v", err)
	}
	defer f.Close()
	opts, err := overlayMount(f, merged)
	if err != nil {
		return nil, err
	}
	u := &upperLayer{dir: upper, merged: merged, xattr: "trusted.overlay."}
	found := false
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "upperdir":
			found = unescapeMount(v) == upper
		case "userxattr":
			u.xattr = "user.overlay."
		}
	}
	if !found {
		return nil, noUpper("the overlay mount at %s has another upper directory", merged)
	}
	return u, nil
}

// overlayMount returns the super block options of the overlay mount at
// mountpoint in a mountinfo table (proc(5)).
func overlayMount(r io.Reader, mountpoint string) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 || unescapeMount(f[4]) != mountpoint {
			continue
		}
		g := strings.Fields(post)
		if len(g) < 3 || g[0] != "overlay" {
			return "", noUpper("%s is a %s mount", mountpoint, g[0])
		}
		return g[2], nil
	}
	if err := sc.Err(); err != nil {
		return "", noUpper("reading %s: %v", mountInfo, err)
	}
	return "", noUpper("no mount at %s in this mount namespace", mountpoint)
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
