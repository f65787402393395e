package registry_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/registry"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// run runs an external client and returns its stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// layoutManifest returns the digest of the one manifest in an OCI layout.
func layoutManifest(t *testing.T, dir string) v1.Hash {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("index.json of %s: %s (%v)", dir, b, err)
	}
	return idx.Manifests[0].Digest
}

// tarNames lists the entries of a tar file.
func tarNames(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}

func TestSkopeo(t *testing.T) {
	skopeo := needTool(t, "skopeo")
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true})
	src := "docker://" + srv.Addr() + "/demo:latest"
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, skopeo, "copy", "--src-tls-verify=false", src, "oci:"+dir+":x")
	if d := layoutManifest(t, dir); d != f.demo.Manifest.Digest {
		t.Errorf("skopeo copied %s, store has %s", d, f.demo.Manifest.Digest)
	}
	// docker-archive converts to a Docker manifest but keeps the config.
	archive := filepath.Join(t.TempDir(), "demo.tar")
	run(t, skopeo, "copy", "--src-tls-verify=false", src, "docker-archive:"+archive+":demo:latest")
	names := tarNames(t, archive)
	if !names["manifest.json"] || !names[f.demo.Config.Digest.Hex+".json"] {
		t.Errorf("docker-archive entries %v", names)
	}
	out := run(t, skopeo, "list-tags", "--tls-verify=false", "docker://"+srv.Addr()+"/demo")
	if !strings.Contains(out, `"latest"`) || !strings.Contains(out, strings.TrimPrefix(f.demoOld.TimeTag, "demo-")) {
		t.Errorf("list-tags: %s", out)
	}
	out = run(t, skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+srv.Addr()+"/demo:latest")
	if digestOf([]byte(out)) != f.demo.Manifest.Digest {
		t.Errorf("inspect --raw differs from the store's manifest")
	}
	// Push back under another name (skopeo uploads with POST, PATCH, PUT).
	run(t, skopeo, "copy", "--dest-tls-verify=false", "oci:"+dir+":x", "docker://"+srv.Addr()+"/skopeoed:v2")
	if d, err := f.store.Resolve(t.Context(), "skopeoed-v2"); err != nil || d.Digest != f.demo.Manifest.Digest {
		t.Errorf("skopeo push: %+v (%v)", d, err)
	}
	noTempFiles(t, f.store)
}

func TestCrane(t *testing.T) {
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	crane := needTool(t, "crane", filepath.Join(strings.TrimSpace(string(gopath)), "bin"))
	f := newFixture(t)
	ro := start(t, f.store, registry.Options{})
	ref := ro.Ref("demo", "latest")
	if d := strings.TrimSpace(run(t, crane, "digest", ref)); d != f.demo.Manifest.Digest.String() {
		t.Errorf("crane digest %s, want %s", d, f.demo.Manifest.Digest)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, crane, "pull", "--format=oci", ref, dir)
	if d := layoutManifest(t, dir); d != f.demo.Manifest.Digest {
		t.Errorf("crane pull: %s", d)
	}
	tarball := filepath.Join(t.TempDir(), "demo.tar")
	run(t, crane, "pull", ref, tarball)
	if !tarNames(t, tarball)["manifest.json"] {
		t.Error("crane pull tarball has no manifest.json")
	}
	if out := run(t, crane, "ls", ro.Host()+"/demo"); !strings.Contains(out, "latest\n") {
		t.Errorf("crane ls: %q", out)
	}
	if out := run(t, crane, "catalog", ro.Host()); out != "demo\nother\n" {
		t.Errorf("crane catalog: %q", out)
	}
	blob := run(t, crane, "blob", ro.Ref("demo", f.demo.Layer.Digest.String()))
	if digestOf([]byte(blob)) != f.demo.Layer.Digest {
		t.Error("crane blob: wrong bytes")
	}
	// Copy into a second store through a push-enabled server.
	g := newFixture(t)
	rw := start(t, g.store, registry.Options{AllowPush: true})
	run(t, crane, "copy", ref, rw.Ref("copied", "v1"))
	if d, err := g.store.Resolve(t.Context(), "copied-v1"); err != nil || d.Digest != f.demo.Manifest.Digest {
		t.Errorf("crane copy: %+v (%v)", d, err)
	}
	run(t, crane, "push", tarball, rw.Ref("fromtar", "latest"))
	if _, err := g.store.Resolve(t.Context(), "fromtar"); err != nil {
		t.Errorf("crane push: %v", err)
	}
	if err := exec.Command(crane, "copy", ref, ro.Ref("refused", "latest")).Run(); err == nil {
		t.Error("crane copy into a read-only server succeeded")
	}
	noTempFiles(t, g.store)
}

func TestDockerPull(t *testing.T) {
	docker := needTool(t, "docker")
	if err := exec.Command(docker, "version").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker is not reachable: %v", err)
		}
		t.Skipf("docker is not reachable: %v", err)
	}
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	ref := srv.Ref("demo", "latest")
	run(t, docker, "pull", "-q", ref)
	t.Cleanup(func() { _ = exec.Command(docker, "rmi", "-f", ref).Run() })
	id := strings.TrimSpace(run(t, docker, "image", "inspect", "--format", "{{.Id}}", ref))
	if id != f.demo.Config.Digest.String() {
		t.Errorf("docker image id %s, config %s", id, f.demo.Config.Digest)
	}
}

func TestContainerdPull(t *testing.T) {
	ctr, err := exec.LookPath("ctr")
	sock := "/var/run/docker/containerd/containerd.sock"
	if err != nil {
		t.Skip("ctr is not installed")
	}
	if _, err := os.Stat(sock); err != nil {
		t.Skip("no containerd socket at " + sock)
	}
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{})
	ref := srv.Ref("demo", "latest")
	ns := "bb-registry-test"
	run(t, ctr, "--address", sock, "-n", ns, "images", "pull", "--plain-http", ref)
	t.Cleanup(func() { _ = exec.Command(ctr, "--address", sock, "-n", ns, "images", "rm", ref).Run() })
	out := run(t, ctr, "--address", sock, "-n", ns, "images", "ls", "-q")
	if !strings.Contains(out, ref) {
		t.Errorf("ctr images: %q", out)
	}
	out = run(t, ctr, "--address", sock, "-n", ns, "images", "check")
	if !strings.Contains(out, "complete") || !strings.Contains(out, f.demo.Manifest.Digest.String()) {
		t.Errorf("ctr images check: %q", out)
	}
}

// TestNestedNameClients pushes nested repository names with independent
// clients and reads them back with others: crane, skopeo and regctl must
// agree with each other and with the store.
func TestNestedNameClients(t *testing.T) {
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	gobin := filepath.Join(strings.TrimSpace(string(gopath)), "bin")
	crane := needTool(t, "crane", gobin)
	skopeo := needTool(t, "skopeo")
	regctl := needTool(t, "regctl", gobin)
	f := newFixture(t)
	srv := start(t, f.store, registry.Options{AllowPush: true, AllowDelete: true})
	want := f.demo.Manifest.Digest.String()

	// crane: push a tarball into a nested name, pull it back.
	tarball := filepath.Join(t.TempDir(), "demo.tar")
	run(t, crane, "pull", srv.Ref("demo", "latest"), tarball)
	run(t, crane, "push", tarball, srv.Ref("team/crane/app", "v1"))
	dir := filepath.Join(t.TempDir(), "layout")
	run(t, crane, "pull", "--format=oci", srv.Ref("team/crane/app", "v1"), dir)
	pushed := strings.TrimSpace(run(t, crane, "digest", srv.Ref("team/crane/app", "v1")))
	if d := layoutManifest(t, dir); d.String() != pushed {
		t.Errorf("crane pull of team/crane/app:v1: %s, pushed %s", d, pushed)
	}
	if d, err := f.store.Resolve(t.Context(), "team___crane___app-v1"); err != nil || d.Digest.String() != pushed {
		t.Errorf("store tag of team/crane/app:v1: %+v (%v)", d, err)
	}
	if out := run(t, crane, "catalog", srv.Host()); !strings.Contains(out, "team/crane/app\n") {
		t.Errorf("crane catalog: %q", out)
	}

	// skopeo: copy the snapshot into a nested latest; bb list sees it at
	// once (a history tag), and skopeo reads it back.
	src := "docker://" + srv.Addr() + "/demo:latest"
	nested := "docker://" + srv.Addr() + "/team/skopeo:latest"
	run(t, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--preserve-digests", src, nested)
	back := filepath.Join(t.TempDir(), "back")
	run(t, skopeo, "copy", "--src-tls-verify=false", nested, "oci:"+back+":x")
	if d := layoutManifest(t, back); d.String() != want {
		t.Errorf("skopeo round trip: %s, want %s", d, want)
	}
	if e, err := snapshot.List(t.Context(), f.store, "team___skopeo"); err != nil || len(e) != 1 || e[0].Manifest.Digest.String() != want {
		t.Errorf("history of team___skopeo: %+v (%v)", e, err)
	}

	// regctl: copy, list, digest, delete a tag.
	host := "reg=" + srv.Host() + ",tls=disabled"
	rc := func(args ...string) string {
		return run(t, regctl, append([]string{"--host", host}, args...)...)
	}
	rc("image", "copy", srv.Ref("team/skopeo", "latest"), srv.Ref("team/regctl/app", "v2"))
	if d := strings.TrimSpace(rc("image", "digest", srv.Ref("team/regctl/app", "v2"))); d != want {
		t.Errorf("regctl image digest: %s, want %s", d, want)
	}
	if out := rc("tag", "ls", srv.Host()+"/team/regctl/app"); out != "v2\n" {
		t.Errorf("regctl tag ls: %q", out)
	}
	rc("tag", "delete", srv.Ref("team/regctl/app", "v2"))
	if _, err := f.store.Resolve(t.Context(), "team___regctl___app-v2"); err == nil {
		t.Error("regctl tag delete left the store tag")
	}
	noTempFiles(t, f.store)
}
