package archive

import (
	"archive/tar"
	"path"
	"strings"
)

// MaxLinks bounds the symbolic link entries Import accepts.
const MaxLinks = 1 << 10

// link records a symbolic link entry of a docker archive. podman save and
// skopeo's docker-archive: (containers/image) write each layer once and
// make <id>/layer.tar a symbolic link to it ("../<digest>.tar"). Such a
// link is accepted only outside blobs/ and the JSON files, with a
// relative target that stays inside the archive; nothing is created on
// disk: after the last entry, manifest.json's paths through the link
// resolve to the regular file it names (resolveLinks).
func (rd *reader) link(name string, hdr *tar.Header) error {
	bad := func() error {
		return invalid("entry %q is %s: bb archives hold only regular files and directories (and, in a docker archive, relative links between its files)", hdr.Name, typeName(hdr))
	}
	if name == "." || name == LayoutFile || name == IndexFile || name == ManifestFile || strings.HasPrefix(name, "blobs/") {
		return bad()
	}
	t := hdr.Linkname
	if t == "" || strings.HasPrefix(t, "/") || strings.Contains(t, "\\") {
		return bad()
	}
	target := path.Clean(path.Join(path.Dir(name), t))
	if target == "." || target == ".." || strings.HasPrefix(target, "../") {
		return invalid("entry %q links to %q, outside the archive", hdr.Name, t)
	}
	if rd.links == nil {
		rd.links = map[string]string{}
	}
	if len(rd.links) >= MaxLinks {
		return invalid("the archive has more than %d symbolic links", MaxLinks)
	}
	if err := rd.see(name); err != nil {
		return err
	}
	rd.links[name] = target
	return nil
}

// resolveLinks makes each link entry name the file it points to, and
// refuses links to anything but a regular file of the archive and
// entries whose path goes through a link.
func (rd *reader) resolveLinks() error {
	for name, target := range rd.links {
		fe, ok := rd.files[target]
		if _, isLink := rd.links[target]; !ok || isLink {
			return invalid("entry %q links to %q, which is not a regular file of the archive", name, target)
		}
		rd.files[name] = fe
	}
	for name := range rd.seen {
		for dir := path.Dir(name); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if _, ok := rd.links[dir]; ok {
				return invalid("entry %q goes through the symbolic link %q", name, dir)
			}
		}
	}
	return nil
}
