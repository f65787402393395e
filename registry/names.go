package registry

import (
	"context"
	"sort"
	"strings"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// latestTag is the registry tag of a slug's current snapshot.
const latestTag = "latest"

// storeTag returns the store tag behind repository repo's tag tag.
func storeTag(repo, tag string) string {
	if tag == latestTag {
		return repo
	}
	return repo + "-" + tag
}

// validRepo checks a repository name: one path component that is a
// valid slug (so that it is also usable as a store tag).
func validRepo(repo string) *regError {
	if err := state.ValidSlug(repo); err != nil {
		return newError(400, codeNameInvalid, "invalid repository name "+quote(repo)+": this registry serves bottle slugs (letters, digits, '.', '_' and '-'; no '/')")
	}
	return nil
}

// validTagFor checks that tag is a registry tag and that, with the repository
// name, it makes a valid store tag.
func validTagFor(repo, tag string) *regError {
	if err := oci.ValidTag(tag); err != nil {
		return newError(400, codeManifestInvalid, err.Error())
	}
	if err := oci.ValidTag(storeTag(repo, tag)); err != nil {
		return newError(400, codeManifestInvalid, "tag "+quote(tag)+" is too long for repository "+quote(repo)+": the store tag "+quote(storeTag(repo, tag))+" must have at most 128 characters")
	}
	return nil
}

// view is the registry's picture of the store's index.json: which store
// tag belongs to which repository under which registry tag.
type view struct {
	repos map[string]map[string]v1.Descriptor // repository -> registry tag -> manifest
	owner map[string]string                   // store tag -> repository ("" when not served)
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
	if validRepo(repo) != nil || oci.ValidTag(tag) != nil || (tag == latestTag && st != repo) {
		v.owner[st] = ""
		return
	}
	if v.repos[repo] == nil {
		v.repos[repo] = map[string]v1.Descriptor{}
	}
	v.repos[repo][tag] = m
	v.owner[st] = repo
}

// tags returns repo's registry tags in lexical order.
func (v *view) tags(repo string) []string {
	var out []string
	for t := range v.repos[repo] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// repositories returns the served repositories in lexical order.
func (v *view) repositories() []string {
	var out []string
	for r := range v.repos {
		out = append(out, r)
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
		out = append(out, Repository{Name: r, Tags: v.tags(r)})
	}
	return out, nil
}
