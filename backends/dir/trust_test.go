package dir_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/backends/dir"
	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/state"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// victim is a directory outside every tree bb works on, with a mode
// nothing in bb would give it.
func victim(t *testing.T) string {
	t.Helper()
	v := filepath.Join(t.TempDir(), "VICTIM")
	if err := os.Mkdir(v, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(v, 0o750); err != nil {
		t.Fatal(err)
	}
	return v
}

func checkVictim(t *testing.T, v string) {
	t.Helper()
	fi, err := os.Lstat(v)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != os.ModeDir|0o750 {
		t.Errorf("%s changed: mode %v", v, fi.Mode())
	}
	if ents, _ := os.ReadDir(v); len(ents) != 0 {
		t.Errorf("%s gained entries: %v", v, ents)
	}
}

func runErr(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	c := cli.New()
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errb)
	err := c.ExecuteContext(context.Background())
	return out.String(), errb.String(), err
}

// The reproduction: tmp and var/tmp in the snapshot are symlinks
// out of the tree; resume must not chmod or mkdir through them.
func TestResumeDoesNotFollowScratchSymlinks(t *testing.T) {
	for name, build := range map[string]func(r, v string) error{
		"var -> x, x/tmp -> VICTIM": func(r, v string) error {
			if err := os.MkdirAll(filepath.Join(r, "x"), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(v, filepath.Join(r, "x/tmp")); err != nil {
				return err
			}
			return os.Symlink("x", filepath.Join(r, "var"))
		},
		"var -> VICTIM": func(r, v string) error { return os.Symlink(v, filepath.Join(r, "var")) },
		"tmp -> VICTIM": func(r, v string) error { return os.Symlink(v, filepath.Join(r, "tmp")) },
		"tmp -> ../../VICTIM": func(r, v string) error {
			return os.Symlink("../../../../../../../.."+v, filepath.Join(r, "tmp"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			v := victim(t)
			r := filepath.Join(t.TempDir(), "r")
			if err := os.Mkdir(r, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := build(r, v); err != nil {
				t.Fatal(err)
			}
			home := t.TempDir()
			run(t, "--home", home, "commit", "--from-dir", r, "--slug", "fsafe-s")
			out := filepath.Join(t.TempDir(), "out")
			run(t, "--home", home, "resume", "fsafe-s", "--dir", out)
			checkVictim(t, v)
			fi, err := os.Lstat(filepath.Join(out, "tmp"))
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
				t.Errorf("tmp in the resumed tree: %v %v", fi, err)
			}
			if fi, err := os.Lstat(out); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("resumed tree's top: %v %v, want 0700", fi, err)
			}
		})
	}
}

// Metadata that came with an import or a pull never names what a later
// commit reads.
func TestImportedMetadataDoesNotSteerCommit(t *testing.T) {
	ctx := context.Background()
	secret := filepath.Join(t.TempDir(), "host-dir")
	if err := os.MkdirAll(filepath.Join(secret, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, ".ssh/id_rsa"), []byte("PRIVATE"), 0o600); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	h := state.Home{Dir: home}
	// A snapshot from elsewhere: committed under another slug here.
	src := bottleTree(t)
	run(t, "--home", home, "commit", "--from-dir", src, "--slug", "fsafe-origin")
	s, err := oci.Open(h.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := s.Resolve(ctx, "fsafe-origin")
	if err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: h, Store: s, Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: h}}}
	raw := []byte(`{"identity":"x","backend":"dir","cwd":"` + secret + `","copy_cwd":true,"agent_name":"a"}`)
	if _, err := m.Adopt(ctx, "fsafe-imp", desc, bottle.AdoptOptions{Metadata: raw}); err != nil {
		t.Fatal(err)
	}
	// Carried as data, without the host fields.
	if got, _ := os.ReadFile(filepath.Join(h.StateDir("fsafe-imp"), state.ImportedMetadataFile)); !bytes.Equal(got, raw) {
		t.Errorf("imported metadata not kept as it came: %s", got)
	}
	var fields map[string]any
	b, _ := h.RawMetadata("fsafe-imp")
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["cwd"]; ok || fields["agent_name"] != "a" || fields["identity"] != "fsafe-imp" {
		t.Errorf("metadata.json after adopt: %s", b)
	}
	// Without a resume there is nothing to commit.
	if _, _, err := runErr("--home", home, "commit", "fsafe-imp"); err == nil {
		t.Fatal("commit of an adopted dir bottle read a directory nobody named here")
	}
	// After a resume, commit reads the resumed tree.
	run(t, "--home", home, "resume", "fsafe-imp")
	res, err := m.Commit(ctx, "fsafe-imp", bottle.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(h.StateDir("fsafe-imp"), "rootfs"); res.Snapshot == nil || !strings.Contains(readSource(t, h, "fsafe-imp"), want) {
		t.Errorf("dir source %q, want %s", readSource(t, h, "fsafe-imp"), want)
	}
	if hasFile(t, s, res, ".ssh/id_rsa") {
		t.Fatal("the commit captured the host directory named by imported metadata")
	}
	// Old state: metadata.json naming a cwd, no dir-source. Refused with
	// a message that says how to name the directory.
	if err := h.WriteMetadata("fsafe-old", state.Metadata{Identity: "fsafe-old", Backend: bottle.Dir, Cwd: secret}); err != nil {
		t.Fatal(err)
	}
	_, _, err = runErr("--home", home, "commit", "fsafe-old")
	if err == nil || !strings.Contains(err.Error(), "--from-dir "+secret) {
		t.Fatalf("commit of a bottle named only by metadata.json: %v", err)
	}
}

func readSource(t *testing.T, h state.Home, slug string) string {
	t.Helper()
	p, err := h.DirSource(slug)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A failed commit --from-dir leaves the slug's metadata and directory
// as they were.
func TestFailedCommitFromDirKeepsState(t *testing.T) {
	home := t.TempDir()
	h := state.Home{Dir: home}
	a := bottleTree(t)
	run(t, "--home", home, "commit", "--from-dir", a, "--slug", "fsafe-f")
	mdBefore, _ := h.RawMetadata("fsafe-f")
	srcBefore := readSource(t, h, "fsafe-f")
	// A directory whose stream the filter refuses cannot be built with
	// host tar; a missing one and a tar that fails mid-stream can.
	_, _, err := runErr("--home", home, "commit", "--from-dir", filepath.Join(t.TempDir(), "missing"), "--slug", "fsafe-f")
	if err == nil {
		t.Fatal("commit of a missing directory succeeded")
	}
	fakeTar := filepath.Join(t.TempDir(), "tar")
	if err := os.WriteFile(fakeTar, []byte("#!/bin/sh\ncase \"$1\" in --version) echo 'tar (GNU tar) 1.35';; *) echo broken >&2; exit 2;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := oci.Open(h.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: h, Store: s, Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: h, Tar: fakeTar}}}
	b := bottleTree(t)
	if _, err := m.Commit(ctx, "fsafe-f", bottle.CommitOptions{Backend: bottle.Dir, Prepare: bottle.PrepareOptions{Dir: b}}); err == nil {
		t.Fatal("commit with a failing tar succeeded")
	}
	if _, err := m.Commit(ctx, "fsafe-new", bottle.CommitOptions{Backend: bottle.Dir, Prepare: bottle.PrepareOptions{Dir: b}}); err == nil {
		t.Fatal("commit with a failing tar succeeded")
	}
	if md, _ := h.RawMetadata("fsafe-f"); !bytes.Equal(md, mdBefore) {
		t.Errorf("metadata rewritten by a failed commit: %s -> %s", mdBefore, md)
	}
	if got := readSource(t, h, "fsafe-f"); got != srcBefore {
		t.Errorf("dir source rewritten by a failed commit: %s -> %s", srcBefore, got)
	}
	if md, _ := h.RawMetadata("fsafe-new"); md != nil {
		t.Errorf("a failed first commit wrote metadata: %s", md)
	}
	if got := readSource(t, h, "fsafe-new"); got != "" {
		t.Errorf("a failed first commit recorded a directory: %s", got)
	}
}

// A dir resume creates device nodes only when asked, and lists the
// ones it skipped.
func TestResumeSkipsDevicesUnlessAsked(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("needs root to create a device node")
		}
		t.Skip("needs root to create a device node")
	}
	r := filepath.Join(t.TempDir(), "r")
	if err := os.MkdirAll(filepath.Join(r, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /dev is excluded from snapshots; a device elsewhere is kept.
	if err := mknodNull(filepath.Join(r, "etc/null")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	run(t, "--home", home, "commit", "--from-dir", r, "--slug", "fsafe-dev")
	out := filepath.Join(t.TempDir(), "out")
	_, stderr, err := runErr("--home", home, "resume", "fsafe-dev", "--dir", out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(out, "etc/null")); err == nil {
		t.Error("device node created without --devices")
	}
	if !strings.Contains(stderr, "/etc/null") {
		t.Errorf("skipped device not reported: %q", stderr)
	}
	out2 := filepath.Join(t.TempDir(), "out")
	run(t, "--home", home, "resume", "fsafe-dev", "--dir", out2, "--devices")
	if fi, err := os.Lstat(filepath.Join(out2, "etc/null")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("device node with --devices: %v %v", fi, err)
	}
}

func mknodNull(p string) error {
	return unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
}

// hasFile reports whether a layer of the commit's snapshot has an entry
// whose name ends in suffix.
func hasFile(t *testing.T, s *oci.Store, res *bottle.CommitResult, suffix string) bool {
	t.Helper()
	img, err := s.Image(context.Background(), res.Snapshot.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if strings.HasSuffix(h.Name, suffix) {
				rc.Close()
				return true
			}
		}
		rc.Close()
	}
	return false
}

// adoptLayer stores a one-layer image made of hdrs in home's store and
// adopts it as slug, the way bb import and bb pull do once they have
// verified the blobs.
func adoptLayer(t *testing.T, home, slug string, hdrs []*tar.Header) {
	t.Helper()
	ctx := context.Background()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	h := state.Home{Dir: home}
	s, err := oci.Open(h.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	ld, lsize, err := s.Ingest(ctx, bytes.NewReader(gz.Bytes()), v1.Hash{}, -1)
	if err != nil {
		t.Fatal(err)
	}
	diffID, _, err := v1.SHA256(bytes.NewReader(raw.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(v1.ConfigFile{OS: "linux", Architecture: "amd64", RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}}})
	cd, err := s.PutBytes(ctx, types.OCIConfigJSON, cfg)
	if err != nil {
		t.Fatal(err)
	}
	man, _ := json.Marshal(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cd,
		Layers: []v1.Descriptor{{MediaType: types.OCILayer, Digest: ld, Size: lsize}}})
	md, err := s.PutBytes(ctx, types.OCIManifestSchema1, man)
	if err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: h, Store: s, Runtimes: map[string]bottle.Runtime{bottle.Dir: &dir.Runtime{Home: h}}}
	if _, err := m.Adopt(ctx, slug, md, bottle.AdoptOptions{Metadata: []byte(`{"backend":"dir"}`)}); err != nil {
		t.Fatal(err)
	}
}

// The import route: a layer entry tmp -> /VICTIM, or
// var -> /VICTIM, then bb resume.
func TestResumeOfImportedLayerDoesNotFollowScratchSymlinks(t *testing.T) {
	for name, link := range map[string]string{"tmp": "tmp", "var": "var", "var/tmp": "var/tmp"} {
		t.Run(name, func(t *testing.T) {
			v := victim(t)
			home := t.TempDir()
			hdrs := []*tar.Header{{Name: link, Typeflag: tar.TypeSymlink, Linkname: v, Mode: 0o777}}
			if link == "var/tmp" {
				hdrs = append([]*tar.Header{{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755}}, hdrs...)
			}
			adoptLayer(t, home, "fsafe-imp", hdrs)
			out := filepath.Join(t.TempDir(), "out")
			_, stderr, err := runErr("--home", home, "resume", "fsafe-imp", "--dir", out)
			if err != nil {
				t.Fatalf("resume: %v\n%s", err, stderr)
			}
			checkVictim(t, v)
			if fi, err := os.Lstat(filepath.Join(out, "tmp")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
				t.Errorf("tmp in the resumed tree: %v %v", fi, err)
			}
		})
	}
}
