package testimage

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options tune BuildRootfs.
type Options struct {
	// BusyboxTar installs BusyBox's tar as /usr/bin/tar instead of GNU tar
	// (a guest that cannot keep xattrs).
	BusyboxTar bool
	// NoTar leaves tar out entirely.
	NoTar bool
	// Findutils installs the host's GNU find and date (incremental
	// commits list the bottle with them).
	Findutils bool
}

// Applets are the busybox commands linked into /bin.
var Applets = []string{"sh", "sleep", "mkdir", "chmod", "chown", "cat", "ls", "rm", "mv", "cp", "ln",
	"echo", "true", "false", "dd", "head", "sha256sum", "touch", "id", "env", "find", "stat", "sync", "test", "["}

// BuildRootfs writes a minimal bottle root filesystem into dir (created
// if needed): /bin/busybox and its applets, GNU tar, /etc/passwd and
// /etc/group (root and node, uid 1000), /home/node, /tmp, /var/tmp, and
// /etc/base-file (a file of the base that tests may delete).
func BuildRootfs(dir string, opts Options) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
			if _, e := os.Stat(p); e == nil {
				bb, err = p, nil
			}
		}
		if err != nil {
			return fmt.Errorf("busybox-static is needed to build test images (apt-get install busybox-static): %w", err)
		}
	}
	for _, d := range []string{"bin", "etc", "usr/bin", "home/node", "root", "var/tmp", "tmp", "proc", "sys", "dev", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := copyFile(bb, filepath.Join(dir, "bin/busybox"), 0o755); err != nil {
		return err
	}
	for _, a := range Applets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	switch {
	case opts.NoTar:
	case opts.BusyboxTar:
		if err := os.Symlink("/bin/busybox", filepath.Join(dir, "usr/bin/tar")); err != nil {
			return err
		}
	default:
		if err := installWithLibs("/usr/bin/tar", dir); err != nil {
			return err
		}
	}
	if opts.Findutils {
		if err := InstallFindutils(dir); err != nil {
			return err
		}
	}
	files := map[string]string{
		"etc/passwd":    "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/home/node:/bin/sh\n",
		"etc/group":     "root:x:0:\nnode:x:1000:\n",
		"etc/base-file": "this file is part of the base image\n",
		"etc/hostname":  "base\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chown(filepath.Join(dir, "home/node"), 1000, 1000); err != nil && os.Geteuid() == 0 {
		return err
	}
	for _, d := range []string{"tmp", "var/tmp"} {
		if err := os.Chmod(filepath.Join(dir, d), 0o777|os.ModeSticky); err != nil {
			return err
		}
	}
	return nil
}

// installWithLibs copies bin and the shared libraries ldd names into
// root, at the same paths.
func installWithLibs(bin, root string) error {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return fmt.Errorf("ldd %s: %w", bin, err)
	}
	paths := []string{bin}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		for _, f := range strings.Fields(sc.Text()) {
			if strings.HasPrefix(f, "/") {
				paths = append(paths, f)
			}
		}
	}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(real, dst, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Config is the config of test images: they sleep forever, so a bottle
// started from one keeps running until removed.
func Config() v1.Config {
	return v1.Config{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "BOTTLE_TEST=1"},
		Cmd:        []string{"/bin/sleep", "infinity"},
		WorkingDir: "/home/node",
		User:       "",
		Labels:     map[string]string{"dev.bot-bottle.test": "base"},
		ExposedPorts: map[string]struct{}{
			"8080/tcp": {},
		},
	}
}

// OwnCommand is the command the shared backend suite starts its bottles
// with, over images of ExitingConfig (docker run … IMAGE /bin/sleep
// infinity).
var OwnCommand = []string{"/bin/sleep", "infinity"}

// ExitingConfig is Config with a CMD that exits at once (status 3, after
// a line of output): a bottle of such an image must be started with its
// own command, and must come back from a snapshot with that command.
func ExitingConfig() v1.Config {
	c := Config()
	c.Cmd = []string{"/bin/sh", "-c", "echo the base image CMD ran and exits; exit 3"}
	return c
}

// Image builds a single-layer image of the root filesystem in dir (tarred
// with the host's GNU tar, numeric owners) with Config.
func Image(ctx context.Context, dir string) (v1.Image, error) {
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, "tar", "--create", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--file=-", "--directory="+dir, ".")
	cmd.Stdout = &buf
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("tar of %s: %w: %s", dir, err, stderr.String())
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "testimage"}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config = Config()
	cf.OS, cf.Architecture = "linux", "amd64"
	return mutate.ConfigFile(img, cf)
}
