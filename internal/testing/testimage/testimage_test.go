package testimage

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestBuildRootfsRunsGNUTar(t *testing.T) {
	dir := t.TempDir()
	if err := BuildRootfs(dir, Options{}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("chroot", dir, "tar", "--version").CombinedOutput()
	if err != nil {
		t.Skipf("chroot unavailable: %v %s", err, out)
	}
	if !strings.Contains(string(out), "GNU tar") {
		t.Fatalf("tar --version in rootfs: %s", out)
	}
	img, err := Image(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := img.Digest(); err != nil {
		t.Fatal(err)
	}
}
