//go:build linux

package adversarial

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// smallDisk mounts a tmpfs of size bytes for the duration of t (root
// only; skipped elsewhere, failed under CI, which runs as root).
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the disk-full test mounts a tmpfs: run it as root")
		}
		t.Skip("the disk-full test mounts a tmpfs: needs root")
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mounting a tmpfs: %v", err)
		}
		t.Skipf("mounting a tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// A commit, an import and an export that fill the disk fail cleanly: the
// store stays valid, no temporary file is left, the previous snapshot
// still resumes, the export target is not created.
func TestDiskFull(t *testing.T) {
	disk := smallDisk(t, "3m")
	home := t.TempDir()
	store := filepath.Join(disk, "oci")
	base := []string{"--store", store}
	small := t.TempDir()
	tree(t, small, 1, 64<<10)
	mustRun(t, home, append(base, "commit", "--from-dir", small, "--slug", "full")...)
	before := tags(t, store)["full"]

	big := t.TempDir()
	tree(t, big, 2, 8<<20)
	out, err := run(t, home, append(base, "commit", "--from-dir", big, "--slug", "full")...)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()+out), "no space") {
		t.Fatalf("commit onto a full disk: err = %v\n%s", err, out)
	}
	if n := checkStore(t, store); n != 0 {
		t.Errorf("%d temporary files left by the failed commit", n)
	}
	if got := tags(t, store)["full"]; got != before {
		t.Errorf("failed commit moved the slug's tag: %s, was %s", got, before)
	}
	resumeOut := filepath.Join(t.TempDir(), "out")
	mustRun(t, home, append(base, "resume", "full", "--dir", resumeOut)...)
	if _, err := os.Stat(filepath.Join(resumeOut, "home/node/random")); err != nil {
		t.Fatal(err)
	}

	// An import of a large archive onto the full disk.
	home2 := t.TempDir()
	mustRun(t, home2, "commit", "--from-dir", big, "--slug", "big")
	archive := filepath.Join(t.TempDir(), "big.tar")
	mustRun(t, home2, "export", "big", "-o", archive)
	if out, err := run(t, home, append(base, "import", archive)...); err == nil {
		t.Fatalf("import onto a full disk succeeded:\n%s", out)
	}
	if n := checkStore(t, store); n != 0 {
		t.Errorf("%d temporary files left by the failed import", n)
	}
	if _, ok := tags(t, store)["big"]; ok {
		t.Error("failed import tagged its snapshot")
	}

	// An export onto a full disk leaves neither the target nor a temp file.
	fill := filepath.Join(disk, "filler")
	_ = exec.Command("dd", "if=/dev/zero", "of="+fill, "bs=64k").Run() // fills the rest
	target := filepath.Join(disk, "x.tar")
	if out, err := run(t, home, append(base, "export", "full", "-o", target)...); err == nil {
		t.Fatalf("export onto a full disk succeeded:\n%s", out)
	}
	ents, _ := os.ReadDir(disk)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "x.tar") || strings.HasPrefix(e.Name(), ".x.tar") {
			t.Errorf("failed export left %s", e.Name())
		}
	}
	checkStore(t, store)
}
