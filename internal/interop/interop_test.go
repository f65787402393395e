package interop_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestMain(m *testing.M) {
	// go install puts crane, oras and regctl into GOPATH/bin.
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		os.Setenv("PATH", os.Getenv("PATH")+string(os.PathListSeparator)+filepath.Join(strings.TrimSpace(string(out)), "bin"))
	}
	os.Exit(m.Run())
}

// need skips the test when a client is missing, and fails it under CI.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is missing: scripts/test-deps.sh installs it", tool)
			}
			t.Skipf("%s is missing: scripts/test-deps.sh installs it", tool)
		}
	}
}

// sh runs a client and returns its standard output; it fails the test
// with the client's output when it fails.
func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String() + errb.String()
}

// bb runs the CLI in-process.
func bb(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := cli.New()
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("bb %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is one snapshot and its exports.
type fixture struct {
	home, slug string
	name       string // full reference docker, podman and ctr load it as
	file       string // bb export (one snapshot)
	refs       string // bb export --layout referrers
	layout     string // file unpacked: an OCI layout directory
	refsLayout string // refs unpacked
	image      v1.Hash
	index      v1.Hash // the index pairing image and metadata
	config     v1.Hash
	hello      string // content of /etc/hello
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{home: t.TempDir(), slug: "interop-" + randHex(4)}
	f.name = "docker.io/library/bot-bottle-committed-" + f.slug + ":latest"
	f.hello = "hello from " + f.slug + "\n"
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"etc", "bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "etc/hello"), []byte(f.hello), 0o644); err != nil {
		t.Fatal(err)
	}
	bb(t, "--home", f.home, "commit", "--from-dir", root, "--slug", f.slug)
	dir := t.TempDir()
	f.file, f.refs = filepath.Join(dir, "export.tar"), filepath.Join(dir, "refs.tar")
	var res struct {
		Images []struct {
			Digest, Index string
		}
	}
	if err := json.Unmarshal([]byte(bb(t, "--home", f.home, "export", f.slug, "-o", f.file, "--json")), &res); err != nil || len(res.Images) != 1 {
		t.Fatalf("bb export --json: %v %+v", err, res)
	}
	bb(t, "--home", f.home, "export", f.slug, "-o", f.refs, "--layout", "referrers")
	var err error
	if f.image, err = v1.NewHash(res.Images[0].Digest); err != nil {
		t.Fatal(err)
	}
	if f.index, err = v1.NewHash(res.Images[0].Index); err != nil {
		t.Fatalf("export without an index pairing image and metadata: %v", err)
	}
	s, err := oci.Open(filepath.Join(f.home, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	mb, err := s.ReadBlob(context.Background(), f.image, oci.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	f.config = m.Config.Digest
	f.layout = filepath.Join(dir, "layout")
	untar(t, f.file, f.layout)
	f.refsLayout = filepath.Join(dir, "refs")
	untar(t, f.refs, f.refsLayout)
	return f
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	fh, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func contains(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Fatalf("%s: %q not in\n%s", what, w, out)
		}
	}
}

// indexDigest reads the digest of the first entry of an OCI layout.
func indexDigest(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("index.json %s: %v", b, err)
	}
	return idx.Manifests[0].Digest.String()
}

// containerd is a containerd of the test's own (root, state and socket in
// a temporary directory), for ctr.
type containerd struct{ sock string }

// startContainerd starts containerd; it runs until owner ends.
func startContainerd(t, owner *testing.T) *containerd {
	t.Helper()
	need(t, "containerd", "ctr")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("ctr tests need root to run containerd")
		}
		t.Skip("ctr tests need root to run containerd")
	}
	dir, err := os.MkdirTemp("", "bb-interop-containerd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{sock: filepath.Join(dir, "c.sock")}
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = %q
[ttrpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owner.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		_ = exec.Command("umount", "-R", filepath.Join(dir, "root")).Run()
		os.RemoveAll(dir)
	})
	// Bounded by time, not by tries: containerd starts slowly on a
	// loaded machine.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if exec.Command("ctr", "-a", c.sock, "version").Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "containerd.log"))
			t.Fatalf("containerd did not come up:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c
}

func (c *containerd) ctr(t *testing.T, args ...string) string {
	t.Helper()
	return sh(t, "ctr", append([]string{"-a", c.sock, "-n", "bb-interop"}, args...)...)
}

// serve runs bb serve --allow-push on the fixture's store until the test
// ends and returns its host:port.
func serve(t *testing.T, home string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	cmd := cli.New()
	cmd.SetArgs([]string{"--home", home, "serve", "--allow-push"})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	done := make(chan error, 1)
	go func() {
		err := cmd.ExecuteContext(ctx)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("bb serve did not stop")
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("bb serve printed nothing: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	m := regexp.MustCompile(`https?://(127\.0\.0\.1:\d+)`).FindStringSubmatch(sc.Text())
	if m == nil {
		t.Fatalf("no address in %q", sc.Text())
	}
	if _, err := net.DialTimeout("tcp", m[1], 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return m[1]
}

var digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)

func TestInterop(t *testing.T) {
	f := newFixture(t)
	metaType := snapshot.MetadataArtifactType

	t.Run("export/docker-load", func(t *testing.T) {
		need(t, "docker")
		out := sh(t, "docker", "load", "-i", f.file)
		contains(t, "docker load", out, "bot-bottle-committed-"+f.slug+":latest")
		ref := "bot-bottle-committed-" + f.slug + ":latest"
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
		id := strings.TrimSpace(sh(t, "docker", "image", "inspect", "--format", "{{.Id}}", ref))
		if id != f.config.String() && id != f.image.String() && id != f.index.String() {
			t.Fatalf("docker loaded %s, want config %s (or manifest %s)", id, f.config, f.image)
		}
	})
	// Docker 20.10 (Debian's docker.io) cannot load zstd layers ("invalid
	// tar header"): export --compression gzip writes them as gzip.
	t.Run("export/docker-load-zstd", func(t *testing.T) {
		need(t, "docker")
		slug := "interop-z" + randHex(4)
		bb(t, "--home", f.home, "import", "../../testdata/images/zstd-oci.tar", "--as", slug, "--backend", "dir")
		file := filepath.Join(t.TempDir(), "gz.tar")
		out := bb(t, "--home", f.home, "export", slug, "--compression", "gzip", "-o", file)
		contains(t, "bb export --compression gzip", out, "layers written as gzip")
		ref := "bot-bottle-committed-" + slug + ":latest"
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
		sh(t, "docker", "load", "-i", file)
		name := "bb-" + slug
		sh(t, "docker", "create", "--name", name, ref)
		t.Cleanup(func() { _ = exec.Command("docker", "rm", "-f", name).Run() })
		contains(t, "docker cp", sh(t, "docker", "cp", name+":/etc/hello.txt", "-"), "hello from a golden image")
	})
	t.Run("export/podman-load", func(t *testing.T) {
		need(t, "podman")
		out := sh(t, "podman", "load", "-i", f.file)
		contains(t, "podman load", out, "bot-bottle-committed-"+f.slug+":latest")
		t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", f.name).Run() })
		id := strings.TrimSpace(sh(t, "podman", "image", "inspect", "--format", "{{.Id}}", f.name))
		if id != f.config.Hex {
			t.Fatalf("podman loaded %s, want config %s", id, f.config)
		}
	})
	t.Run("export/skopeo", func(t *testing.T) {
		need(t, "skopeo")
		dst := t.TempDir()
		sh(t, "skopeo", "copy", "-q", "oci-archive:"+f.file, "oci:"+dst+":a") // no image name needed
		if got := indexDigest(t, dst); got != f.image.String() {
			t.Fatalf("skopeo copy oci-archive: copied %s, want the image %s", got, f.image)
		}
		var ins struct{ Layers []string }
		if err := json.Unmarshal([]byte(sh(t, "skopeo", "inspect", "docker-archive:"+f.file)), &ins); err != nil || len(ins.Layers) != 1 {
			t.Fatalf("skopeo inspect docker-archive: %v %+v", err, ins)
		}
		sh(t, "skopeo", "copy", "-q", "docker-archive:"+f.file, "oci:"+t.TempDir()+":b")
	})
	// The default layout names one index.json entry (the index pairing
	// image and metadata): umoci 0.4.7 finds two images under "latest",
	// oras needs the platform to reach the image, regctl artifact tree
	// shows the metadata (artifact list does not: it reads referrers only
	// from index.json entries).
	t.Run("export/oras", func(t *testing.T) {
		need(t, "oras")
		out := sh(t, "oras", "discover", "--oci-layout", "--platform", "linux/amd64", f.layout+":latest")
		contains(t, "oras discover", out, f.image.String(), metaType)
	})
	t.Run("export/regctl", func(t *testing.T) {
		need(t, "regctl")
		out := sh(t, "regctl", "artifact", "tree", "ocidir://"+f.layout)
		contains(t, "regctl artifact tree", out, f.index.String(), f.image.String(), metaType)
		if out := sh(t, "regctl", "artifact", "list", "ocidir://"+f.layout); strings.Contains(out, metaType) {
			t.Errorf("regctl artifact list now finds the metadata in the default layout:\n%s", out)
		}
	})

	// --layout referrers names the image itself and the referrers tag
	// schema's index of its metadata: the OCI layout tools find both
	// without extra flags; skopeo and crane need the name or --index.
	t.Run("export-referrers/regctl", func(t *testing.T) {
		need(t, "regctl")
		out := sh(t, "regctl", "artifact", "list", "ocidir://"+f.refsLayout)
		contains(t, "regctl artifact list", out, f.image.String(), metaType)
		out = sh(t, "regctl", "artifact", "list", "ocidir://"+f.refsLayout+"@"+f.image.String())
		contains(t, "regctl artifact list by digest", out, metaType)
	})
	t.Run("export-referrers/oras", func(t *testing.T) {
		need(t, "oras")
		out := sh(t, "oras", "discover", "--oci-layout", f.refsLayout+":latest") // no --platform needed
		contains(t, "oras discover", out, f.image.String(), metaType)
	})
	t.Run("export-referrers/umoci", func(t *testing.T) {
		need(t, "umoci")
		layout, bundle := filepath.Join(t.TempDir(), "l"), filepath.Join(t.TempDir(), "b")
		untar(t, f.refs, layout)
		args := []string{"unpack", "--image", layout + ":latest", bundle}
		if os.Geteuid() != 0 {
			args = []string{"unpack", "--rootless", "--image", layout + ":latest", bundle}
		}
		sh(t, "umoci", args...)
		if b, err := os.ReadFile(filepath.Join(bundle, "rootfs/etc/hello")); err != nil || string(b) != f.hello {
			t.Fatalf("umoci unpacked %q, %v", b, err)
		}
	})
	t.Run("export-referrers/skopeo", func(t *testing.T) {
		need(t, "skopeo")
		// Debian's skopeo 1.9.3 (containers/image 5.23.1) takes an unnamed
		// oci-archive: only with exactly one index.json entry.
		if out, err := exec.Command("skopeo", "copy", "-q", "oci-archive:"+f.refs, "oci:"+t.TempDir()+":a").CombinedOutput(); err == nil || !strings.Contains(string(out), "more than one image") {
			t.Errorf("skopeo copy of the referrers layout without a name: %v %s; if skopeo now takes it, make --layout referrers the default", err, out)
		}
		dst := t.TempDir()
		sh(t, "skopeo", "copy", "-q", "oci-archive:"+f.refs+":latest", "oci:"+dst+":a")
		if got := indexDigest(t, dst); got != f.image.String() {
			t.Fatalf("skopeo copy oci-archive:FILE:latest copied %s, want the image %s", got, f.image)
		}
	})
	t.Run("export-referrers/docker-load", func(t *testing.T) {
		need(t, "docker")
		ref := "bot-bottle-committed-" + f.slug + ":latest"
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
		contains(t, "docker load", sh(t, "docker", "load", "-i", f.refs), ref)
		id := strings.TrimSpace(sh(t, "docker", "image", "inspect", "--format", "{{.Id}}", ref))
		if id != f.config.String() && id != f.image.String() {
			t.Fatalf("docker loaded %s, want config %s (or manifest %s)", id, f.config, f.image)
		}
	})
	t.Run("export-referrers/podman-load", func(t *testing.T) {
		need(t, "podman")
		t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", f.name).Run() })
		contains(t, "podman load", sh(t, "podman", "load", "-i", f.refs), f.name)
		if id := strings.TrimSpace(sh(t, "podman", "image", "inspect", "--format", "{{.Id}}", f.name)); id != f.config.Hex {
			t.Fatalf("podman loaded %s, want config %s", id, f.config)
		}
	})
	t.Run("export-referrers/bb-import", func(t *testing.T) {
		home := t.TempDir()
		contains(t, "bb import", bb(t, "--home", home, "import", f.refs, "--backend", "dir"), f.slug, "metadata restored")
	})

	var ctd *containerd
	parent := t
	t.Run("export/ctr-import", func(t *testing.T) {
		ctd = startContainerd(t, parent)
		ctd.ctr(t, "image", "import", f.file)
		contains(t, "ctr image ls", ctd.ctr(t, "image", "ls", "-q"), f.name)
	})
	t.Run("export-referrers/ctr-import", func(t *testing.T) {
		if ctd == nil {
			ctd = startContainerd(t, parent)
		}
		_ = exec.Command("ctr", "-a", ctd.sock, "-n", "bb-interop", "image", "rm", f.name).Run()
		// ctr 1.6 makes an image of every named index.json entry and
		// unpacks each: the image unpacks, then the referrers entry fails
		// with "no match for platform" (exit 1). --no-unpack imports both.
		ctd.ctr(t, "image", "import", "--no-unpack", f.refs)
		ls := ctd.ctr(t, "image", "ls")
		contains(t, "ctr image ls", ls, f.name, f.image.String())
	})

	reg := serve(t, f.home)
	src := reg + "/" + f.slug + ":latest"
	other := t.TempDir() // another host's bb home
	// pushed checks that bb reads what a client pushed into bb serve.
	pushed := func(t *testing.T, repo string) {
		t.Helper()
		bb(t, "--home", other, "pull", reg+"/"+repo+":latest", "--as", repo+"-back")
	}
	t.Run("export/crane", func(t *testing.T) {
		need(t, "crane")
		repo := "interop-crane-" + randHex(3)
		sh(t, "crane", "push", "--insecure", f.layout, reg+"/"+repo+":latest") // no --index needed
		if d := strings.TrimSpace(sh(t, "crane", "digest", "--insecure", reg+"/"+repo+":latest")); d != f.index.String() {
			t.Fatalf("crane pushed %s, want the export's index %s", d, f.index)
		}
		pushed(t, repo)
	})

	t.Run("export-referrers/crane", func(t *testing.T) {
		need(t, "crane")
		repo := "interop-cranerefs-" + randHex(3)
		if out, err := exec.Command("crane", "push", "--insecure", f.refsLayout, reg+"/"+repo+":latest").CombinedOutput(); err == nil || !strings.Contains(string(out), "--index") {
			t.Errorf("crane push of the referrers layout without --index: %v %s; if crane now takes it, make --layout referrers the default", err, out)
		}
		sh(t, "crane", "push", "--insecure", "--index", f.refsLayout, reg+"/"+repo+":latest")
		pushed(t, repo)
	})

	t.Run("serve/docker", func(t *testing.T) {
		need(t, "docker")
		sh(t, "docker", "pull", "-q", src)
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", src).Run() })
		repo := "interop-docker-" + randHex(3)
		dst := reg + "/" + repo + ":latest"
		sh(t, "docker", "tag", src, dst)
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", dst).Run() })
		d := digestRE.FindString(sh(t, "docker", "push", dst))
		if d == "" {
			t.Fatal("docker push printed no digest")
		}
		sh(t, "docker", "rmi", dst)
		sh(t, "docker", "pull", "-q", dst)
		contains(t, "docker pull of the pushed image", sh(t, "docker", "image", "inspect", "--format", "{{json .RepoDigests}}", dst), d)
		pushed(t, repo)
	})
	t.Run("serve/skopeo", func(t *testing.T) {
		need(t, "skopeo")
		dst := t.TempDir()
		sh(t, "skopeo", "copy", "-q", "--src-tls-verify=false", "docker://"+src, "oci:"+dst+":a")
		if got := indexDigest(t, dst); got != f.image.String() {
			t.Fatalf("skopeo pulled %s, want %s", got, f.image)
		}
		repo := "interop-skopeo-" + randHex(3)
		sh(t, "skopeo", "copy", "-q", "--dest-tls-verify=false", "oci-archive:"+f.file, "docker://"+reg+"/"+repo+":latest")
		var ins struct{ Digest string }
		if err := json.Unmarshal([]byte(sh(t, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg+"/"+repo+":latest")), &ins); err != nil || ins.Digest != f.image.String() {
			t.Fatalf("skopeo pushed %+v (%v), want %s", ins, err, f.image)
		}
		pushed(t, repo)
	})
	t.Run("serve/crane", func(t *testing.T) {
		need(t, "crane")
		if d := strings.TrimSpace(sh(t, "crane", "digest", "--insecure", src)); d != f.image.String() {
			t.Fatalf("crane digest %s, want %s", d, f.image)
		}
		dst := t.TempDir()
		sh(t, "crane", "pull", "--insecure", "--format=oci", src, dst)
		repo := "interop-cranecp-" + randHex(3)
		sh(t, "crane", "copy", "--insecure", src, reg+"/"+repo+":latest")
		if d := strings.TrimSpace(sh(t, "crane", "digest", "--insecure", reg+"/"+repo+":latest")); d != f.image.String() {
			t.Fatalf("crane copied %s, want %s", d, f.image)
		}
		pushed(t, repo)
	})
	t.Run("serve/oras", func(t *testing.T) {
		need(t, "oras")
		contains(t, "oras discover", sh(t, "oras", "discover", "--plain-http", src), metaType)
		sh(t, "oras", "copy", "--no-tty", "-r", "--from-plain-http", src, "--to-oci-layout", filepath.Join(t.TempDir(), "o")+":a")
		repo := "interop-oras-" + randHex(3)
		sh(t, "oras", "copy", "--no-tty", "--from-oci-layout", f.layout+":latest", "--to-plain-http", reg+"/"+repo+":latest")
		contains(t, "oras discover of the pushed image", sh(t, "oras", "discover", "--plain-http", reg+"/"+repo+"@"+f.image.String()), metaType)
		sh(t, "oras", "copy", "--no-tty", "--from-plain-http", reg+"/"+repo+":latest", "--to-oci-layout", filepath.Join(t.TempDir(), "p")+":a")
		pushed(t, repo)
	})
	t.Run("serve/regctl", func(t *testing.T) {
		need(t, "regctl")
		host := "reg=" + reg + ",tls=disabled"
		sh(t, "regctl", "--host", host, "image", "copy", src, "ocidir://"+filepath.Join(t.TempDir(), "r")+":a")
		contains(t, "regctl artifact list", sh(t, "regctl", "--host", host, "artifact", "list", src), metaType)
		repo := "interop-regctl-" + randHex(3)
		sh(t, "regctl", "--host", host, "image", "copy", "ocidir://"+f.layout+":latest", reg+"/"+repo+":latest")
		contains(t, "regctl artifact list of the pushed image", sh(t, "regctl", "--host", host, "artifact", "list", reg+"/"+repo+"@"+f.image.String()), metaType)
		sh(t, "regctl", "--host", host, "image", "copy", reg+"/"+repo+":latest", "ocidir://"+filepath.Join(t.TempDir(), "s")+":a")
		pushed(t, repo)
	})
	t.Run("serve/podman", func(t *testing.T) {
		need(t, "podman")
		sh(t, "podman", "pull", "-q", "--tls-verify=false", src)
		t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", src).Run() })
		repo := "interop-podman-" + randHex(3)
		dst := reg + "/" + repo + ":latest"
		sh(t, "podman", "push", "--tls-verify=false", src, dst)
		sh(t, "podman", "pull", "-q", "--tls-verify=false", dst)
		t.Cleanup(func() { _ = exec.Command("podman", "rmi", "-f", dst).Run() })
		pushed(t, repo)
	})
	t.Run("serve/ctr", func(t *testing.T) {
		if ctd == nil {
			ctd = startContainerd(t, parent)
		}
		ctd.ctr(t, "image", "pull", "--plain-http", src)
		repo := "interop-ctr-" + randHex(3)
		dst := reg + "/" + repo + ":latest"
		ctd.ctr(t, "image", "push", "--plain-http", dst, src)
		ctd.ctr(t, "image", "rm", src)
		ctd.ctr(t, "image", "pull", "--plain-http", dst)
		pushed(t, repo)
	})
}
