package smolvm_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/backendtest"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// TestPackLosesBootRestores: a machine created straight from bb's pack
// has what smolvm 1.9.3's pack loses lost (xattrs, modes of directories
// with children), as the stand-in models; bb resume puts it back.
func TestPackLosesBootRestores(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	slug := backendtest.NewSlug("lossy")
	backendtest.StartBottle(t, h, e, slug, testimage.Options{})
	backendtest.Change(t, h, slug, 1<<20)
	before := backendtest.Walk(t, h, slug)
	res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw := backendtest.NewSlug("raw")
	mustCLI(t, "machine", "create", "--name", bottle.Name(raw), "--from", res.Committed)
	mustCLI(t, "machine", "start", "--name", bottle.Name(raw))
	defer h.Remove(t, raw)
	packed, err := fstree.Walk(h.Tree(t, raw), backendtest.Excluded)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"home/node/work/modes/private", "home/node/work/modes/shared", "home/node/work/modes/sticky"} {
		if m := packed[p].Mode; m != os.ModeDir|0o755 {
			t.Errorf("the pack kept %s as %v: the stand-in does not model smolvm's unpacking (parents set to 0755)", p, m)
		}
	}
	if x := packed["home/node/work/x/cap"].Xattrs; x != "" {
		t.Errorf("the pack kept xattrs %q: the stand-in does not model smolvm's unpacking (no xattrs)", x)
	}
	if m := packed["home/node/work/empty"].Mode; m != os.ModeDir|0o700 {
		t.Errorf("an empty 0700 directory became %v; the tar crate keeps modes of directories without children", m)
	}

	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(before, backendtest.Walk(t, h, slug)); len(d) > 0 {
		t.Fatalf("bb resume did not restore what the pack lost:\n%s", strings.Join(d, "\n"))
	}
}

// TestCpCap: --method cp refuses, before it writes anything, a root
// filesystem whose tar is over machine cp's cap (SMOLVM_FILE_TRANSFER_MAX_BYTES,
// which the stand-in applies as smolvm does).
func TestCpCap(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "cap", testimage.Options{})
	t.Setenv(smolvm.EnvTransferMax, "1M")
	_, err := e.Manager.Commit(context.Background(), "cap", bottle.CommitOptions{Prepare: bottle.PrepareOptions{Method: smolvm.MethodCp}})
	if !errors.Is(err, smolvm.ErrOverCap) {
		t.Fatalf("commit over the cap: %v, want ErrOverCap", err)
	}
	if left, _ := filepath.Glob(filepath.Join(h.Tree(t, "cap"), "var/tmp/.bb-commit-*")); len(left) > 0 {
		t.Errorf("a tar was written in the guest: %v", left)
	}
	// The stand-in's own cap: machine cp of a file over it fails and
	// leaves no partial file.
	if err := os.WriteFile(filepath.Join(h.Tree(t, "cap"), "var/tmp/big"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "big")
	if _, err := cli(t, nil, "machine", "cp", bottle.Name("cap")+":/var/tmp/big", dst); err == nil || !strings.Contains(err.Error(), "exceeding the 1048576 byte cap") {
		t.Errorf("machine cp over the cap: %v", err)
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Errorf("machine cp left a partial file: %v", err)
	}
}

// TestCLIFailureIsNotTarWarning: when smolvm itself fails with exit
// status 1 (src/main.rs), the commit fails; it is not GNU tar's "file
// changed" warning.
func TestCLIFailureIsNotTarWarning(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "clifail", testimage.Options{})
	// A tar that prints a little, then the CLI "fails" with status 1
	// before tar reports: the guest's tar is replaced by a script that
	// dies without running the real one.
	tarPath := filepath.Join(h.Tree(t, "clifail"), "usr/bin/tar")
	if err := os.Rename(tarPath, tarPath+".real"); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ncase \"$*\" in *--version*) exec /usr/bin/tar.real \"$@\";; esac\nkill -9 $PPID\n"
	if err := os.WriteFile(tarPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := e.Manager.Commit(context.Background(), "clifail", bottle.CommitOptions{})
	if err == nil {
		t.Fatal("commit succeeded although the guest command never reported tar's status")
	}
	if !strings.Contains(err.Error(), "tar") {
		t.Errorf("error: %v", err)
	}
}

// TestNameRules: slugs that smolvm cannot name a machine after are
// refused before any work.
func TestNameRules(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	// (bb's slugs have at most 100 characters, so smolvm's 128 cannot be
	// reached through bb: CheckSmolvmName and the stand-in check it below.)
	for _, slug := range []string{"has.dot", "double--dash", "trailing-"} {
		_, err := e.Manager.Commit(context.Background(), slug, bottle.CommitOptions{Backend: bottle.Smolmachines})
		if err == nil || !strings.Contains(err.Error(), "cannot name a smolvm machine") {
			t.Errorf("commit %q: %v", slug, err)
		}
		_, err = e.Manager.Resume(context.Background(), slug, bottle.ResumeRequest{Backend: bottle.Smolmachines})
		if err == nil || !strings.Contains(err.Error(), "cannot name a smolvm machine") {
			t.Errorf("resume %q: %v", slug, err)
		}
		if _, err := cli(t, nil, "machine", "create", "--name", bottle.Name(slug)); err == nil {
			t.Errorf("the stand-in created a machine named %q", bottle.Name(slug))
		}
	}
	if err := bottle.CheckSmolvmName(strings.Repeat("a", 117)); err != nil {
		t.Errorf("128 characters: %v", err)
	}
	if err := bottle.CheckSmolvmName(strings.Repeat("a", 118)); err == nil {
		t.Error("129 characters accepted")
	}
	if _, err := cli(t, nil, "machine", "create", "--name", bottle.Name(strings.Repeat("a", 118))); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("the stand-in created a machine with a 129-character name: %v", err)
	}
}

// TestDeleteStops: machine delete stops a running machine whatever the
// flags; without --force it then asks, and "no" keeps it (stopped).
func TestDeleteStops(t *testing.T) {
	name := bottle.Name("del")
	newHarness(t)
	mustCLI(t, "machine", "create", "--name", name)
	mustCLI(t, "machine", "start", "--name", name)
	if _, err := cli(t, strings.NewReader("n\n"), "machine", "delete", "--name", name); err != nil {
		t.Fatal(err)
	}
	if out := string(mustCLI(t, "machine", "ls", "--json")); !strings.Contains(out, `"state": "stopped"`) {
		t.Errorf("after a declined delete: %s", out)
	}
	mustCLI(t, "machine", "start", "--name", name)
	mustCLI(t, "machine", "delete", "--name", name, "--force")
	if out := string(mustCLI(t, "machine", "ls", "--json")); strings.Contains(out, name) {
		t.Errorf("after delete --force: %s", out)
	}
}

// TestStates: commit needs a running machine; machine ls reports the
// other states smolvm has (created, stopped, failed, unreachable, frozen).
func TestStates(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	backendtest.StartBottle(t, h, e, "states", testimage.Options{})
	for _, st := range []string{"created", "stopped", "failed", "unreachable", "frozen"} {
		if err := os.WriteFile(filepath.Join(h.MachineDir("states"), "state"), []byte(st), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := e.Manager.Commit(context.Background(), "states", bottle.CommitOptions{})
		if !errors.Is(err, bottle.ErrNotRunning) {
			t.Errorf("commit of a %s machine: %v, want ErrNotRunning", st, err)
		}
	}
}

// TestRestoreUsesPackedSnapshot: after a bb commit --no-load, the store's
// current snapshot is newer than the pack committed-image names; resume
// packs that snapshot (bb stored it without loading it) and the restore
// after the boot is made from the snapshot the new pack holds, the
// restore tar of the old pack being gone.
func TestRestoreUsesPackedSnapshot(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	slug := backendtest.NewSlug("packed")
	backendtest.StartBottle(t, h, e, slug, testimage.Options{})
	backendtest.Change(t, h, slug, 1<<10)
	before := backendtest.Walk(t, h, slug)
	res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(res.Committed + smolvm.RestoreSuffix); err != nil {
		t.Errorf("the commit did not prepare the restore tar: %v", err)
	}
	// Without it, the restore is made from the store at boot.
	if err := os.Remove(res.Committed + smolvm.RestoreSuffix); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(t, slug, nil, "sh", "-c", "echo newer > /home/node/work/x/cap"); err != nil {
		t.Fatal(err)
	}
	after := backendtest.Walk(t, h, slug)
	if len(fstree.Diff(before, after)) == 0 {
		t.Fatal("the change did not change the bottle")
	}
	if _, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{NoLoad: true}); err != nil {
		t.Fatal(err)
	}
	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(after, backendtest.Walk(t, h, slug)); len(d) > 0 {
		t.Fatalf("the resumed bottle is not the latest snapshot:\n%s", strings.Join(d, "\n"))
	}
}

// TestChainPackRestores: the second commit is a chain that Load
// flattens for smolvm, and its restore tar is built from the flattened
// tar as Pack makes it; a machine created from that pack loses modes and
// xattrs as smolvm's does, and bb resume puts them back.
func TestChainPackRestores(t *testing.T) {
	h := newHarness(t)
	e := backendtest.NewEnv(t, h)
	ctx := context.Background()
	slug := backendtest.NewSlug("chainpack")
	backendtest.StartBottle(t, h, e, slug, testimage.Options{Findutils: true})
	if _, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // out of the listing's racy window
	backendtest.Change(t, h, slug, 1<<20)
	before := backendtest.Walk(t, h, slug)
	res, err := e.Manager.Commit(ctx, slug, bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Incremental == nil || res.Incremental.Parent == "" {
		t.Fatalf("the second commit is not a chain: %+v", res.Incremental)
	}
	if fi, err := os.Stat(res.Committed + smolvm.RestoreSuffix); err != nil || fi.Size() == 0 {
		t.Fatalf("no restore tar next to the pack of a chain: %v", err)
	}
	h.Remove(t, slug)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := fstree.Diff(before, backendtest.Walk(t, h, slug)); len(d) > 0 {
		t.Fatalf("bb resume of a flattened chain differs from the bottle:\n%s", strings.Join(d, "\n"))
	}
}
