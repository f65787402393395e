package registry

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// latestTag is the registry tag of a slug's current snapshot.
const latestTag = "latest"

// storeTag returns the store tag behind tag tag of the repository whose
// store name is slug (see storeName).
func storeTag(slug, tag string) string {
	if tag == latestTag {
		return slug
	}
	return slug + "-" + tag
}

// repoRE is the OCI distribution specification's repository name
// grammar.
var repoRE = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)

// nestSep stands for '/' in the store name of a nested repository: three
// underscores never occur in a repository name, so the mapping can be
// reversed.
const nestSep = "___"

// maxRepoLen bounds a repository name (distribution's limit).
const maxRepoLen = 255

// storeName maps repository name repo onto the store: the slug whose tags
// hold its manifests. A slug-shaped name is its own slug; each '/' of a
// nested name becomes "___" ("team/app" is slug team___app). It refuses
// names that are not valid (400 NAME_INVALID) and valid names whose slug
// would be too long for the store (404 NAME_UNKNOWN).
func storeName(repo string) (string, *regError) {
	if len(repo) > maxRepoLen || !repoRE.MatchString(repo) {
		e := newError(400, codeNameInvalid, "invalid repository name "+quote(repo)+": use lowercase letters and digits, separated by '.', '_', '__', '-' or '/'")
		e.Detail = map[string]string{"name": repo}
		return "", e
	}
	slug := strings.ReplaceAll(repo, "/", nestSep)
	if err := state.ValidSlug(slug); err != nil {
		e := newError(404, codeNameUnknown, fmt.Sprintf("repository %s cannot be held in bb's store: its store name %s (each '/' as %q) must be a slug of at most 100 characters", quote(repo), quote(slug), nestSep))
		e.Detail = map[string]string{"name": repo}
		return "", e
	}
	return slug, nil
}

// repoName is the reverse of storeName: the repository a slug in the
// store is served as, "" if it is none (a slug that is not a repository
// name, like "my_.bottle").
func repoName(slug string) string {
	if state.ValidSlug(slug) != nil {
		return ""
	}
	repo := strings.ReplaceAll(slug, nestSep, "/")
	if len(repo) > maxRepoLen || !repoRE.MatchString(repo) || strings.ReplaceAll(repo, "/", nestSep) != slug {
		return ""
	}
	return repo
}

// validTagFor checks that tag is a registry tag and that, with the
// repository's store name slug, it makes a valid store tag.
func validTagFor(repo, slug, tag string) *regError {
	if err := oci.ValidTag(tag); err != nil {
		return newError(400, codeManifestInvalid, err.Error())
	}
	if err := oci.ValidTag(storeTag(slug, tag)); err != nil {
		return newError(400, codeManifestInvalid, "tag "+quote(tag)+" is too long for repository "+quote(repo)+": the store tag "+quote(storeTag(slug, tag))+" must have at most 128 characters")
	}
	return nil
}

// view is the registry's picture of the store's index.json: which store
// tag belongs to which repository under which registry tag. Repositories
// are keyed by their store names (slugs; see storeName).
type view struct {
	repos map[string]map[string]v1.Descriptor // slug -> registry tag -> manifest
	owner map[string]string                   // store tag -> slug ("" when not served)
}

// newView assigns every tagged entry of idx to a repository. An entry
// whose slug annotation prefixes its tag belongs to that slug. Other
// entries belong to the longest known slug their tag starts with
// (<slug> or <slug>-<suffix>), and otherwise make a repository of their
// own, served as <tag>:latest.
func newView(idx *v1.IndexManifest) *view {
	v := &view{repos: map[string]map[string]v1.Descriptor{}, owner: map[string]string{}}
	known := map[string]bool{}
	var loose []v1.Descriptor
	for _, m := range idx.Manifests {
		if sl := m.Annotations[oci.SlugAnnotation]; sl != "" && m.Annotations[oci.RefNameAnnotation] != "" {
			known[sl] = true
		}
	}
	for _, m := range idx.Manifests {
		t := m.Annotations[oci.RefNameAnnotation]
		if t == "" {
			continue
		}
		if sl := m.Annotations[oci.SlugAnnotation]; sl != "" {
			if rt, ok := splitTag(sl, t); ok {
				v.add(sl, rt, t, m)
				continue
			}
		}
		loose = append(loose, m)
	}
	// Shorter tags first, so that "foo" is known before "foo-x" is placed.
	sort.SliceStable(loose, func(i, j int) bool {
		return len(loose[i].Annotations[oci.RefNameAnnotation]) < len(loose[j].Annotations[oci.RefNameAnnotation])
	})
	for _, m := range loose {
		t := m.Annotations[oci.RefNameAnnotation]
		best := ""
		for sl := range known {
			if _, ok := splitTag(sl, t); ok && len(sl) > len(best) {
				best = sl
			}
		}
		if best == "" {
			best = t
			known[t] = true
		}
		rt, _ := splitTag(best, t)
		v.add(best, rt, t, m)
	}
	return v
}

// splitTag returns the registry tag of store tag t in repository slug.
func splitTag(slug, t string) (string, bool) {
	if t == slug {
		return latestTag, true
	}
	if s, ok := strings.CutPrefix(t, slug+"-"); ok && s != "" {
		return s, true
	}
	return "", false
}

func (v *view) add(repo, tag, st string, m v1.Descriptor) {
	if repoName(repo) == "" || oci.ValidTag(tag) != nil || (tag == latestTag && st != repo) {
		v.owner[st] = ""
		return
	}
	if v.repos[repo] == nil {
		v.repos[repo] = map[string]v1.Descriptor{}
	}
	v.repos[repo][tag] = m
	v.owner[st] = repo
}

// tags returns the registry tags of the repository with store name slug,
// in lexical order.
func (v *view) tags(slug string) []string {
	var out []string
	for t := range v.repos[slug] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// repositories returns the served repositories in lexical order.
func (v *view) repositories() []string {
	var out []string
	for sl := range v.repos {
		out = append(out, repoName(sl))
	}
	sort.Strings(out)
	return out
}

// page applies the n and last parameters of a list request to sorted
// list: the entries after last, at most n of them (n < 0: all). more
// reports whether entries remain after the page.
func page(list []string, n int, last string) (out []string, more bool) {
	i := 0
	if last != "" {
		i = sort.SearchStrings(list, last)
		if i < len(list) && list[i] == last {
			i++
		}
	}
	out = list[i:]
	if n >= 0 && len(out) > n {
		return out[:n], true
	}
	return out, false
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return "\"" + strings.ToValidUTF8(s, "?") + "\""
}

// Repository is one repository the registry serves and its tags.
type Repository struct {
	Name string
	// Tags are in lexical order: "latest" (the current snapshot) and the
	// history's time suffixes, which sort oldest first.
	Tags []string
}

// Repositories lists what a registry over s serves, by name.
func Repositories(ctx context.Context, s *oci.Store) ([]Repository, error) {
	idx, err := s.Index(ctx)
	if err != nil {
		return nil, err
	}
	v := newView(idx)
	var out []Repository
	for _, r := range v.repositories() {
		sl, _ := storeName(r)
		out = append(out, Repository{Name: r, Tags: v.tags(sl)})
	}
	return out, nil
}
