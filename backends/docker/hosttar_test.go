package docker_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/backends/docker"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/pgzip"
	"golang.org/x/sys/unix"
)

// TestHostReadMatchesGuestTar commits one bottle state twice, through
// tar in the bottle and read on the host from the overlay mount, and
// compares the diff layers entry by entry: types, modes, owners, sizes,
// mtimes, link targets, device numbers, xattrs and contents. The host
// read may add directory entries the daemon's change list leaves out.
func TestHostReadMatchesGuestTar(t *testing.T) {
	c := needDocker(t)
	if os.Geteuid() != 0 {
		t.Skip("reading the overlay mount needs root")
	}
	t.Parallel()
	ctx := context.Background()
	base := buildImage(t, c, testimage.Options{}, nil)
	slug := newSlug("hostread")
	e := newEnv(t, c)
	ctr := startBottle(t, c, base, slug)
	sh(t, c, ctr, mutate+`
ln /etc/passwd /home/node/hard-to-base
touch /etc/passwd
mkdir -p /home/node/`+strings.Repeat("long-directory-name/", 8)+`
echo long > /home/node/`+strings.Repeat("long-directory-name/", 8)+strings.Repeat("f", 120)+`
`)
	ci, err := c.ContainerInspect(ctx, ctr)
	if err != nil {
		t.Fatal(err)
	}
	// What busybox cannot make: xattrs, a fifo, a device.
	merged := ci.GraphDriver.Data["MergedDir"]
	if err := unix.Setxattr(filepath.Join(merged, "home/node/work/suid"), "user.bb-test", []byte("v1"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(merged, "home/node/work/empty"), "user.bb-dir", []byte("d"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(merged, "home/node/fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(merged, "home/node/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(merged, "home/node/work/a/b/c/deep.txt"), time.Now(), time.Unix(1700000000, 123456789)); err != nil {
		t.Fatal(err)
	}

	layers := map[string]map[string]string{}
	for _, mode := range []string{docker.ChangesDaemon, docker.ChangesAuto} {
		e.rt.ChangeList = mode
		e.logs.reset()
		res, err := e.m.Commit(ctx, slug, bottle.CommitOptions{NoLoad: true})
		if err != nil {
			t.Fatalf("%q: %v", mode, err)
		}
		if mode == docker.ChangesAuto && !e.logs.contains("listed the changes in the upper directory") {
			t.Errorf("the commit did not use the upper directory:\n%s", e.logs)
		}
		layers[mode] = layerEntries(t, e.store, res.Layer.Digest)
	}
	guest, host := layers[docker.ChangesDaemon], layers[docker.ChangesAuto]
	t.Logf("diff layer: %d entries through tar in the bottle, %d read on the host", len(guest), len(host))
	for _, n := range sortedKeys(guest) {
		if host[n] != guest[n] {
			t.Errorf("%s:\nguest tar %s\nhost read %s", n, guest[n], host[n])
		}
	}
	for _, n := range sortedKeys(host) {
		if _, ok := guest[n]; !ok && !strings.HasPrefix(host[n], "dir ") {
			t.Errorf("only the host read has %s: %s", n, host[n])
		}
	}
	for _, want := range []string{"home/node/fifo", "home/node/null", "home/node/work/suid", "home/node/work/random.hard", "home/node/hard-to-base"} {
		if host[want] == "" {
			t.Errorf("the host read lacks %s", want)
		}
	}
	if !strings.Contains(host["home/node/work/suid"], "user.bb-test=v1") || !strings.Contains(host["home/node/work/empty/"], "user.bb-dir=d") {
		t.Errorf("xattrs lost: %q %q", host["home/node/work/suid"], host["home/node/work/empty/"])
	}
}

// layerEntries describes every entry of a stored gzip layer.
func layerEntries(t *testing.T, s *oci.Store, h v1.Hash) map[string]string {
	t.Helper()
	f, err := s.Blob(context.Background(), h)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := pgzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		sum := ""
		if hdr.Typeflag == tar.TypeReg {
			b, _ := io.ReadAll(tr)
			sum = fmt.Sprintf("%x", b[:min(len(b), 16)])
		}
		var xa []string
		for k, v := range hdr.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xa = append(xa, strings.TrimPrefix(k, "SCHILY.xattr.")+"="+v)
			}
		}
		sort.Strings(xa)
		typ := map[byte]string{tar.TypeReg: "file", tar.TypeDir: "dir", tar.TypeSymlink: "symlink", tar.TypeLink: "link",
			tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeFifo: "fifo"}[hdr.Typeflag]
		out[hdr.Name] = fmt.Sprintf("%s mode=%o uid=%d gid=%d size=%d mtime=%d link=%s dev=%d,%d xattrs=%v head=%s",
			typ, hdr.Mode, hdr.Uid, hdr.Gid, hdr.Size, hdr.ModTime.Unix(), hdr.Linkname, hdr.Devmajor, hdr.Devminor, xa, sum)
	}
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
