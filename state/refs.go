package state

import "regexp"

// committedPrefix begins the repository name of every committed image.
const committedPrefix = "bot-bottle-committed-"

// DefaultRegistry is what containerd and Apple container put before a
// short image name: docker.io/library/.
const DefaultRegistry = "docker.io/library/"

// CommittedRef returns the image reference a snapshot of slug is loaded
// under in Docker and Apple container, which committed-image names:
// bot-bottle-committed-<slug>:latest.
func CommittedRef(slug string) string { return committedPrefix + slug + ":latest" }

// FullCommittedRef is CommittedRef(slug) as containerd and Apple
// container spell it, with the registry:
// docker.io/library/bot-bottle-committed-<slug>:latest.
func FullCommittedRef(slug string) string { return DefaultRegistry + CommittedRef(slug) }

var committedRE = regexp.MustCompile(`^` + committedPrefix + `([A-Za-z0-9][A-Za-z0-9_.-]*)$`)

// CommittedSlug returns what follows bot-bottle-committed- in a committed
// image's repository name (without registry or tag), or "" when repo is
// not one. The caller checks it with ValidSlug.
func CommittedSlug(repo string) string {
	if m := committedRE.FindStringSubmatch(repo); m != nil {
		return m[1]
	}
	return ""
}
