package layer

import (
	"bytes"
	"strings"
)

// OCI whiteouts (image-spec layer.md): an entry named ".wh.NAME" hides
// NAME of the layers below it; an entry ".wh..wh..opq" in a directory
// hides everything the layers below hold in that directory. Every
// reader (dockerd, containerd, umoci, skopeo, bb) applies them by name,
// whatever the entry's type, so a layer cannot carry a file or directory
// whose name starts with WhiteoutPrefix as itself.
const (
	WhiteoutPrefix = ".wh."
	OpaqueWhiteout = ".wh..wh..opq"
)

// WhiteoutName returns the whiteout entry that hides p: "a/b" -> "a/.wh.b".
func WhiteoutName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1] + WhiteoutPrefix + p[i+1:]
	}
	return WhiteoutPrefix + p
}

// Reserved reports whether a slash-separated path has a component whose
// name starts with WhiteoutPrefix: as a layer entry it would be a
// whiteout (or lie below one), not itself.
func Reserved(p string) bool {
	return strings.HasPrefix(p, WhiteoutPrefix) || strings.Contains(p, "/"+WhiteoutPrefix)
}

// ReservedBytes is Reserved for a path held as bytes.
func ReservedBytes(p []byte) bool {
	return bytes.HasPrefix(p, []byte(WhiteoutPrefix)) || bytes.Contains(p, []byte("/"+WhiteoutPrefix))
}
