package docker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/state"
)

// TestResumeBootsTheLatestSnapshot: against dockerd, bb resume boots a
// snapshot that bb commit --no-load or bb import stored without loading;
// a docker commit the launcher made under the committed name and
// recorded after bb's load is booted as it is, not replaced by bb's
// later snapshot.
func TestResumeBootsTheLatestSnapshot(t *testing.T) {
	c := needDocker(t)
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t, c)
	base := buildImage(t, c, testimage.Options{}, nil)
	slug := "resume-" + randHex(4)
	ctr := startBottle(t, c, base, slug)
	note := func() string {
		t.Helper()
		return strings.TrimSpace(sh(t, c, ctr, "cat /root/note"))
	}
	ref := state.CommittedRef(slug)

	sh(t, c, ctr, "echo A > /root/note")
	runCLI(t, e, "commit", slug)
	sh(t, c, ctr, "echo B > /root/note")
	runCLI(t, e, "commit", "--no-load", slug)
	if out := runCLI(t, e, "resume", "--print", slug); strings.TrimSpace(out) != ref {
		t.Fatalf("bb resume --print: %q", out)
	}
	runCLI(t, e, "resume", "--replace", slug)
	if n := note(); n != "B" {
		t.Fatalf("after commit --no-load, resume booted note %q, want B", n)
	}

	// The launcher commits the bottle under the committed name after
	// bb's load, and records it; bb's later --no-load snapshot must not
	// replace that image.
	sh(t, c, ctr, "echo C > /root/note")
	runCLI(t, e, "commit", slug)
	sh(t, c, ctr, "echo D > /root/note")
	runCLI(t, e, "commit", "--no-load", slug)
	sh(t, c, ctr, "echo launcher > /root/note")
	launcher, err := c.ContainerCommit(ctx, ctr, container.CommitOptions{Reference: ref})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.home.StateDir(slug), state.CommittedImageFile), []byte(ref+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, e, "resume", "--replace", slug)
	if n := note(); n != "launcher" {
		t.Fatalf("after the launcher's commit, resume booted note %q, want the launcher's", n)
	}
	if ii, err := c.ImageInspect(ctx, ref); err != nil || ii.ID != launcher.ID {
		t.Fatalf("%s is %s now, want the launcher's %s (%v)", ref, ii.ID, launcher.ID, err)
	}

	// The same without rewriting committed-image: the image ID tells.
	sh(t, c, ctr, "echo E > /root/note")
	runCLI(t, e, "commit", slug)
	sh(t, c, ctr, "echo F > /root/note")
	runCLI(t, e, "commit", "--no-load", slug)
	sh(t, c, ctr, "echo launcher2 > /root/note")
	if _, err := c.ContainerCommit(ctx, ctr, container.CommitOptions{Reference: ref}); err != nil {
		t.Fatal(err)
	}
	runCLI(t, e, "resume", "--replace", slug)
	if n := note(); n != "launcher2" {
		t.Fatalf("after the launcher's docker commit, resume booted note %q, want the launcher's", n)
	}

	// An import without loading replaces the slug's snapshot: resume boots it.
	other := "resume-" + randHex(4)
	octr := startBottle(t, c, base, other)
	sh(t, c, octr, "echo imported > /root/note")
	runCLI(t, e, "commit", "--no-load", other)
	archive := filepath.Join(t.TempDir(), "x.tar")
	runCLI(t, e, "export", other, "-o", archive)
	runCLI(t, e, "commit", slug) // bb loads again: its record is current
	runCLI(t, e, "import", archive, "--as", slug, "--force")
	runCLI(t, e, "resume", "--replace", slug)
	if n := note(); n != "imported" {
		t.Fatalf("after bb import, resume booted note %q, want imported", n)
	}
}
