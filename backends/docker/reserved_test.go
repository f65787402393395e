package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// A Docker bottle holding files named like whiteouts (".wh.foo" next to
// the base image's "foo", ".wh..wh..opq" in a base directory, a directory
// ".wh.dir"): every way of committing it (the upper directory read on the
// host, the daemon's change list with tar in the bottle, the daemon's
// export, a full snapshot) leaves them out and names them, while the
// whiteout of a deleted base file still applies; the resumed bottle has
// "foo" and the base directory's contents.
func TestReservedNames(t *testing.T) {
	c := needDocker(t)
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "work/base/sub"), 0o755); err != nil {
			return err
		}
		for f, s := range map[string]string{"work/foo": "base foo", "work/base/keep": "kept", "work/base/sub/deep": "deep", "work/gone": "gone"} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	slug := newSlug("harden-wh")
	e := newEnv(t, c)
	ctr := startBottle(t, c, base, slug)
	want := []string{"work/.wh..wh.x", "work/.wh.dir", "work/.wh.dir/inner", "work/.wh.foo", "work/base/.wh..wh..opq"}
	for _, v := range []struct {
		name       string
		changeList string
		opts       bottle.PrepareOptions
	}{
		{name: "upper directory", changeList: docker.ChangesAuto},
		{name: "daemon's change list", changeList: docker.ChangesDaemon},
		{name: "export", changeList: docker.ChangesAuto, opts: bottle.PrepareOptions{Method: docker.MethodExport}},
		{name: "full", changeList: docker.ChangesAuto, opts: bottle.PrepareOptions{Full: true}},
	} {
		t.Run(v.name, func(t *testing.T) {
			sh(t, c, ctr, `set -e
echo agent > /work/.wh.foo
echo agent > /work/base/.wh..wh..opq
mkdir -p /work/.wh.dir && echo agent > /work/.wh.dir/inner
echo agent > /work/.wh..wh.x
rm -f /work/gone
echo new > /work/new`)
			e.rt.ChangeList = v.changeList
			e.logs.reset()
			res, err := e.m.Commit(ctx, slug, bottle.CommitOptions{Prepare: v.opts})
			if err != nil {
				t.Fatal(err)
			}
			got := append([]string{}, res.Stats.ReservedPaths...)
			sort.Strings(got)
			if res.Stats.Reserved != int64(len(want)) || strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("reserved %d %q, want %q", res.Stats.Reserved, got, want)
			}
			// The early load's plan (a dry run of the same filter) comes
			// out at the layer's size: the whiteouts bb made are marked there too.
			if v.name == "upper directory" && (!e.logs.contains("listed the changes in the upper directory") || !e.logs.contains("sent while it was built")) {
				t.Errorf("the upper directory was not read, or the early load was abandoned:\n%s", e.logs)
			}
			if !strings.Contains(strings.Join(res.Warnings, "\n"), "work/.wh.foo") {
				t.Errorf("no warning names the left-out files: %q", res.Warnings)
			}
			if _, err := e.m.Resume(ctx, slug, bottle.ResumeRequest{Resume: bottle.ResumeOptions{Replace: true}}); err != nil {
				t.Fatal(err)
			}
			out := sh(t, c, ctr, `cd /work && cat foo base/keep base/sub/deep new && ls -A /work /work/base | tr '\n' ' '`)
			if wantOut := "base foo" + "kept" + "deep" + "new\n" + "/work: base foo new  /work/base: keep sub "; out != wantOut {
				t.Errorf("resumed bottle:\n%q\nwant\n%q", out, wantOut)
			}
		})
	}
}
