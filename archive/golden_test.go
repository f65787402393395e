package archive_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/bot-bottle/bb/bottle"
)

// goldenDir holds archives written by real tools (testdata/images/build.sh
// rebuilds them). bb must keep importing every one: a change that stops
// reading one of them fails here.
const goldenDir = "../testdata/images"

// goldenArchives are the archives build.sh writes, each by another tool.
var goldenArchives = []string{
	"docker-save.tar",           // docker save
	"skopeo-oci.tar",            // skopeo copy ... oci-archive:
	"podman-save.tar",           // podman save (docker-archive)
	"crane-oci.tar",             // crane pull --format=oci (tarred layout)
	"oras-oci.tar",              // oras copy -r --to-oci-layout, with a referrer
	"regctl-oci.tar",            // regctl image copy --referrers ocidir://, with a referrer
	"zstd-oci.tar",              // skopeo copy --dest-compress-format zstd
	"bb-export.tar",             // bb export of the version that wrote it
	"bb-export-two-entries.tar", // bb export before image and metadata were paired in an index
}

// goldenEntry is one entry of the golden tree: "d" dir, "f" file, "l"
// symlink; for files, the content; for links, the target.
type goldenEntry struct {
	kind string
	perm fs.FileMode
	data string
}

var goldenTree = map[string]goldenEntry{
	"bin":                {"d", 0o755, ""},
	"bin/greet":          {"f", 0o755, "#!/bin/sh\necho hi\n"},
	"data":               {"d", 0o700, ""},
	"data/secret.txt":    {"f", 0o600, "secret\n"},
	"etc":                {"d", 0o755, ""},
	"etc/hello.txt":      {"f", 0o644, "hello from a golden image\n"},
	"etc/hello-hard.txt": {"f", 0o644, "hello from a golden image\n"},
	"link":               {"l", 0, "etc/hello.txt"},
}

// scratchDirs are created by resume in every bottle (bottle's scratch-dir
// script), not part of the image.
var scratchDirs = map[string]bool{"tmp": true, "var": true, "var/tmp": true}

func TestGoldenArchives(t *testing.T) {
	ents, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tar") {
			have = append(have, e.Name())
		}
	}
	slices.Sort(have)
	want := slices.Sorted(slices.Values(goldenArchives))
	if !slices.Equal(have, want) {
		t.Fatalf("testdata/images holds %v, want %v (update goldenArchives with build.sh)", have, want)
	}
	var total int64
	for _, name := range goldenArchives {
		fi, err := os.Stat(filepath.Join(goldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		total += fi.Size()
	}
	if total > 10<<20 {
		t.Errorf("testdata/images weighs %d bytes; keep the golden archives under 10 MiB", total)
	}
	for _, name := range goldenArchives {
		t.Run(strings.TrimSuffix(name, ".tar"), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			h := newEnv(t)
			res, err := h.m.ImportFile(ctx, filepath.Join(goldenDir, name), bottle.ImportOptions{As: "golden", Backend: bottle.Dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Images) != 1 || res.Images[0].Slug != "golden" {
				t.Fatalf("import result %+v", res)
			}
			if strings.HasPrefix(name, "bb-export") && !res.Images[0].Metadata {
				t.Error("bb's own export lost its bottle metadata")
			}
			dst := filepath.Join(t.TempDir(), "rootfs")
			if _, err := h.m.Resume(ctx, "golden", resumeInto(dst)); err != nil {
				t.Fatal(err)
			}
			checkGoldenTree(t, dst)
		})
	}
}

func checkGoldenTree(t *testing.T, root string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		seen[rel] = true
		want, ok := goldenTree[rel]
		if !ok && scratchDirs[rel] && d.IsDir() {
			return nil
		}
		if !ok {
			t.Errorf("unexpected entry %s", rel)
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch want.kind {
		case "d":
			if !fi.IsDir() || fi.Mode().Perm() != want.perm {
				t.Errorf("%s: %v, want a directory %v", rel, fi.Mode(), want.perm)
			}
		case "f":
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() || fi.Mode().Perm() != want.perm || string(b) != want.data {
				t.Errorf("%s: %v %q, want a file %v %q", rel, fi.Mode(), b, want.perm, want.data)
			}
		case "l":
			target, err := os.Readlink(p)
			if err != nil || target != want.data {
				t.Errorf("%s: link to %q (%v), want %q", rel, target, err, want.data)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range goldenTree {
		if !seen[p] {
			t.Errorf("missing %s", p)
		}
	}
	a, errA := os.Stat(filepath.Join(root, "etc/hello.txt"))
	b, errB := os.Stat(filepath.Join(root, "etc/hello-hard.txt"))
	if errA == nil && errB == nil && a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Error("etc/hello-hard.txt is no longer a hard link of etc/hello.txt")
	}
}
