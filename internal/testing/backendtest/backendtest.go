package backendtest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/bot-bottle/bb/bottle"
	"github.com/bot-bottle/bb/cmd/bb/cli"
	"github.com/bot-bottle/bb/internal/testing/fstree"
	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/internal/testing/testimage"
	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/bot-bottle/bb/state"
)

// Harness drives one backend's runtime for the suite.
type Harness interface {
	// Backend is the backend's name (bottle.Docker, bottle.MacosContainer, ...).
	Backend() string
	// Runtime returns the runtime under test for bb home h.
	Runtime(t testing.TB, h state.Home) bottle.Runtime
	// Start starts the bottle bot-bottle-<slug> from the root filesystem
	// directory dir (built with testimage.BuildRootfs) and leaves it
	// running. Where the runtime has images, the image's config is
	// testimage.ExitingConfig (its CMD exits) and the bottle is started
	// with its own command, testimage.OwnCommand. It may write the slug's
	// metadata.json; the suite writes one naming Backend() if it does not.
	Start(t testing.TB, slug, dir string)
	// Command returns the command line the runtime runs the bottle with
	// (nil where bottles run no command: dir).
	Command(t testing.TB, slug string) []string
	// Exec runs argv as root inside the running bottle, with stdin (nil
	// for none), and returns its stdout; a non-zero exit is an error.
	Exec(t testing.TB, slug string, stdin io.Reader, argv ...string) ([]byte, error)
	// Tree returns a directory holding the bottle's current root
	// filesystem (a copy is fine) for fstree.Walk.
	Tree(t testing.TB, slug string) string
	// Remove removes the bottle; a bottle that is gone is not an error.
	Remove(t testing.TB, slug string)
	// Forget removes the runtime's copy of a snapshot (committed, what
	// committed-image names) so that a resume must install it again
	// from bb's store.
	Forget(t testing.TB, h state.Home, slug, committed string)
}

// Excluded are the paths a snapshot leaves out (snapshot.DefaultExcludes).
var Excluded = fstree.Under(snapshot.DefaultExcludes...)

// BigFileSize is the size of the random file the round trip carries.
const BigFileSize = 50 << 20

// RequireRoot skips t unless it runs as root (stand-ins chroot); with CI
// set it fails instead.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal("these tests chroot into bottle root filesystems and must run as root in CI")
	}
	t.Skip("needs root (chroot into bottle root filesystems)")
}

// Env is a bb home and store for one test.
type Env struct {
	Home    state.Home
	Store   *oci.Store
	Manager *bottle.Manager
}

// NewEnv makes a home and store in a temporary directory and a Manager
// whose only runtime is h's.
func NewEnv(t testing.TB, h Harness) *Env {
	t.Helper()
	home := state.Home{Dir: t.TempDir()}
	s, err := oci.Open(home.StoreDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &bottle.Manager{Home: home, Store: s, Runtimes: map[string]bottle.Runtime{h.Backend(): h.Runtime(t, home)}}
	return &Env{Home: home, Store: s, Manager: m}
}

// BaseRootfs builds a test root filesystem in a temporary directory.
func BaseRootfs(t testing.TB, opts testimage.Options) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	if err := testimage.BuildRootfs(dir, opts); err != nil {
		t.Fatal(err)
	}
	return dir
}

// NewSlug returns a slug for a bottle about what, with a random suffix:
// runtimes such as Docker may be shared with other test runs.
func NewSlug(what string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return what + "-" + hex.EncodeToString(b)
}

// StartBottle starts slug from a fresh test root filesystem and writes
// its metadata.json if the harness did not.
func StartBottle(t testing.TB, h Harness, e *Env, slug string, opts testimage.Options) {
	t.Helper()
	h.Start(t, slug, BaseRootfs(t, opts))
	t.Cleanup(func() { h.Remove(t, slug) })
	if md, err := e.Home.ReadMetadata(slug); err != nil {
		t.Fatal(err)
	} else if md == nil {
		if err := e.Home.WriteMetadata(slug, state.Metadata{Identity: slug, Backend: h.Backend()}); err != nil {
			t.Fatal(err)
		}
	}
}

// changes is what the agent "did" in the bottle.
const changes = `set -e
w=/home/node/work
mkdir -p $w/a/b/c
echo deep > $w/a/b/c/deep.txt
chmod 640 $w/a/b/c/deep.txt
cat > $w/big.bin
ln -s a/b/c/deep.txt $w/link
ln $w/big.bin $w/big.hard
echo '#!/bin/sh' > $w/suid
mkdir $w/empty
chown -R 1000:1000 $w
chmod 4755 $w/suid
chmod 700 $w/empty
rm /etc/base-file
echo scratch > /tmp/scratch
echo scratch > /var/tmp/scratch
`

// moreChanges are the entries that lossy unpackers damage: directories
// 0700, 2775 and 1777 that have children, a long name (250 bytes) in a
// path beyond ustar's limits, a name that is not UTF-8, and a sparse
// file (10 MiB hole, then 4 KiB of data).
const moreChanges = `set -e
w=/home/node/work
mkdir -p $w/modes/private/inner $w/modes/shared/inner $w/modes/sticky/inner
echo p > $w/modes/private/inner/f
echo s > $w/modes/shared/inner/f
echo t > $w/modes/sticky/inner/f
chown -R 1000:1000 $w/modes/shared
chmod 700 $w/modes/private
chmod 2775 $w/modes/shared
chmod 1777 $w/modes/sticky
long=$(printf "%0250d" 7)
mkdir -p $w/names/$long/$long
echo long > $w/names/$long/$long/$long
echo bad > "$w/names/$(printf 'caf\351-\377\376')"
dd if=$w/big.bin of=$w/sparse bs=4096 count=1 seek=2560 2>/dev/null
`

// Capability is a security.capability value (VFS_CAP_REVISION_2,
// cap_net_bind_service permitted) the suite sets on a file.
var Capability = []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// xattrTar is a tar that GNU tar extracts in the bottle (the one way to
// set xattrs in a guest without setfattr): a directory with a user.*
// xattr and children, a file with user.* and security.capability, and a
// hard link to it.
func xattrTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	x := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m["SCHILY.xattr."+kv[i]] = kv[i+1]
		}
		return m
	}
	body := []byte("#!/bin/sh\necho cap\n")
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "home/node/work/x/", Mode: 0o750, Uid: 1000, Gid: 1000, PAXRecords: x("user.dir", "on a directory")},
		{Typeflag: tar.TypeReg, Name: "home/node/work/x/cap", Mode: 0o755, Size: int64(len(body)), PAXRecords: x("user.note", "hello", "security.capability", string(Capability))},
		{Typeflag: tar.TypeLink, Name: "home/node/work/x/cap.link", Linkname: "home/node/work/x/cap"},
		{Typeflag: tar.TypeReg, Name: "home/node/work/x/plain", Mode: 0o600, Uid: 1000, Gid: 1000, PAXRecords: x("user.a", "1", "user.b", "")},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Name == "home/node/work/x/cap" {
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Change makes the suite's changes inside a running bottle; the random
// file has bigSize bytes.
func Change(t testing.TB, h Harness, slug string, bigSize int) {
	t.Helper()
	big := make([]byte, bigSize)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Exec(t, slug, bytes.NewReader(big), "sh", "-c", changes); err != nil {
		t.Fatalf("changing the bottle: %v", err)
	}
	if _, err := h.Exec(t, slug, nil, "sh", "-c", moreChanges); err != nil {
		t.Fatalf("changing the bottle (modes, names, sparse file): %v", err)
	}
	if _, err := h.Exec(t, slug, bytes.NewReader(xattrTar(t)), "tar", "--extract", "--xattrs", "--xattrs-include=*",
		"--numeric-owner", "--same-permissions", "--same-owner", "--file=-", "--directory=/"); err != nil {
		t.Fatalf("setting xattrs in the bottle: %v", err)
	}
}

// Walk records a bottle's tree, excluded paths aside.
func Walk(t testing.TB, h Harness, slug string) map[string]fstree.Entry {
	t.Helper()
	tree, err := fstree.Walk(h.Tree(t, slug), Excluded)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// Run runs the suite against h.
func Run(t *testing.T, h Harness) {
	t.Run("RoundTrip", func(t *testing.T) { RoundTrip(t, h) })
	t.Run("IncrementalChain", func(t *testing.T) { IncrementalChain(t, h) })
	if h.Backend() != bottle.Dir {
		t.Run("CommitWithoutSlug", func(t *testing.T) { CommitWithoutSlug(t, h) })
	}
}

// RoundTrip commits a changed bottle, removes it and the runtime's copy
// of the snapshot, resumes it and compares the trees.
func RoundTrip(t *testing.T, h Harness) { RoundTripWith(t, h, Case{}) }

// Case varies a round trip.
type Case struct {
	// Commit are the commit's options (a --method, say).
	Commit bottle.CommitOptions
	// BigFile is the size of the random file (BigFileSize when 0).
	BigFile int
}

// RoundTripWith is RoundTrip with other commit options or file size.
func RoundTripWith(t *testing.T, h Harness, c Case) {
	ctx := context.Background()
	e := NewEnv(t, h)
	slug := NewSlug("roundtrip")
	if c.BigFile == 0 {
		c.BigFile = BigFileSize
	}
	StartBottle(t, h, e, slug, testimage.Options{})
	Change(t, h, slug, c.BigFile)
	before := Walk(t, h, slug)
	checkChanged(t, before, c.BigFile)

	res, err := e.Manager.Commit(ctx, slug, c.Commit)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	for _, w := range res.Warnings {
		t.Logf("commit warning: %s", w)
	}
	if res.Committed == "" {
		t.Fatal("commit recorded nothing in committed-image")
	}
	if got, err := e.Home.CommittedImage(slug); err != nil || got != res.Committed {
		t.Fatalf("committed-image = %q, %v; want %q", got, err, res.Committed)
	}
	if !e.Home.Preserved(slug) {
		t.Error("preserve marker missing after commit")
	}

	h.Remove(t, slug)
	h.Forget(t, e.Home, slug, res.Committed)
	if has, err := e.Manager.Runtimes[h.Backend()].Has(ctx, res.Committed); err != nil || has {
		t.Fatalf("after Forget, Has(%q) = %v, %v", res.Committed, has, err)
	}
	committed, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if committed != res.Committed {
		t.Errorf("resume booted %q, commit recorded %q", committed, res.Committed)
	}
	after := Walk(t, h, slug)
	tolerate(t, h, before, after)
	if d := fstree.Diff(before, after); len(d) > 0 {
		t.Fatalf("tree differs after commit and resume:\n%s", strings.Join(d, "\n"))
	}
	if cmd := h.Command(t, slug); cmd != nil && !slices.Equal(cmd, testimage.OwnCommand) {
		t.Errorf("the resumed bottle runs %q, want its own command %q (not the base image's CMD)", cmd, testimage.OwnCommand)
	}
	checkScratch(t, h.Tree(t, slug))

	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); !errors.Is(err, bottle.ErrRunning) {
		t.Errorf("resume of a running bottle: err = %v, want ErrRunning", err)
	}
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{Resume: bottle.ResumeOptions{Replace: true}}); err != nil {
		t.Errorf("resume --replace: %v", err)
	}
	if d := fstree.Diff(before, Walk(t, h, slug)); len(d) > 0 {
		t.Errorf("tree differs after resume --replace:\n%s", strings.Join(d, "\n"))
	}
}

// KnownLosses is implemented by harnesses of backends with a known,
// reported loss of the named xattrs: the suite logs the loss instead of
// failing on it.
type KnownLosses interface {
	KnownLosses() []string
}

// resumeFromStore removes the bottle and the runtime's copy of its
// snapshot, resumes it from bb's store and returns its tree, which must
// be before (what, in the failure) but for what tolerate allows.
func resumeFromStore(ctx context.Context, t testing.TB, h Harness, e *Env, slug string, before map[string]fstree.Entry, what string) map[string]fstree.Entry {
	t.Helper()
	committed, err := e.Home.CommittedImage(slug)
	if err != nil {
		t.Fatal(err)
	}
	h.Remove(t, slug)
	h.Forget(t, e.Home, slug, committed)
	if _, err := e.Manager.Resume(ctx, slug, bottle.ResumeRequest{}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	after := Walk(t, h, slug)
	tolerate(t, h, before, after)
	if d := fstree.Diff(before, after); len(d) > 0 {
		t.Fatalf("resumed tree differs from %s:\n%s", what, strings.Join(d, "\n"))
	}
	return after
}

// tolerate removes from both trees the xattrs h is known to lose, where
// after lacks them, logging each.
func tolerate(t testing.TB, h Harness, before, after map[string]fstree.Entry) {
	kl, ok := h.(KnownLosses)
	if !ok {
		return
	}
	for _, name := range kl.KnownLosses() {
		for p, b := range before {
			a, ok := after[p]
			if !ok || !strings.Contains(b.Xattrs, name+"=") || strings.Contains(a.Xattrs, name+"=") {
				continue
			}
			t.Logf("KNOWN LOSS (%s backend): %s lost %s", h.Backend(), p, name)
			b.Xattrs = dropXattr(b.Xattrs, name)
			before[p] = b
		}
	}
}

func dropXattr(list, name string) string {
	var out []string
	for _, x := range strings.Split(list, ";") {
		if x != "" && !strings.HasPrefix(x, name+"=") {
			out = append(out, x)
		}
	}
	return strings.Join(out, ";")
}

func checkChanged(t testing.TB, tree map[string]fstree.Entry, bigSize int) {
	t.Helper()
	big, ok := tree["home/node/work/big.bin"]
	if !ok || big.Size != int64(bigSize) {
		t.Fatalf("big.bin missing or wrong size before commit: %v", big)
	}
	if hard := tree["home/node/work/big.hard"]; hard.Inode == "" || hard.Inode != big.Inode {
		t.Fatalf("big.hard is not a hard link of big.bin before commit: %v %v", hard, big)
	}
	if s := tree["home/node/work/suid"]; s.Mode&os.ModeSetuid == 0 || s.UID != 1000 {
		t.Fatalf("suid file not set up: %v", s)
	}
	if _, ok := tree["etc/base-file"]; ok {
		t.Fatal("etc/base-file was not deleted")
	}
	for p, want := range map[string]os.FileMode{
		"home/node/work/modes/private": os.ModeDir | 0o700,
		"home/node/work/modes/shared":  os.ModeDir | os.ModeSetgid | 0o775,
		"home/node/work/modes/sticky":  os.ModeDir | os.ModeSticky | 0o777,
	} {
		if got := tree[p].Mode; got != want {
			t.Fatalf("%s is %v before commit, want %v", p, got, want)
		}
	}
	if c := tree["home/node/work/x/cap"]; !strings.Contains(c.Xattrs, "security.capability=") || !strings.Contains(c.Xattrs, "user.note=") {
		t.Fatalf("xattrs not set up before commit: %v", c)
	}
	if l := tree["home/node/work/x/cap.link"]; l.Inode == "" || l.Inode != tree["home/node/work/x/cap"].Inode {
		t.Fatalf("cap.link is not a hard link of cap before commit: %v", l)
	}
	if s := tree["home/node/work/sparse"]; s.Size != 2561*4096 {
		t.Fatalf("sparse file not set up: %v", s)
	}
	odd := 0
	for p := range tree {
		if strings.HasPrefix(p, "home/node/work/names/") && (!utf8.ValidString(p) || len(p) > 700) {
			odd++
		}
	}
	if odd < 2 {
		t.Fatalf("long and non-UTF-8 names not set up (%d found)", odd)
	}
}

// checkScratch makes sure /tmp and /var/tmp are empty root:root 1777.
func checkScratch(t testing.TB, root string) {
	t.Helper()
	for _, d := range []string{"tmp", "var/tmp"} {
		p := filepath.Join(root, d)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("/%s after resume: %v", d, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("/%s after resume: %v %d:%d, want root:root drwxrwxrwt", d, fi.Mode(), st.Uid, st.Gid)
		}
		if ents, _ := os.ReadDir(p); len(ents) > 0 {
			t.Errorf("/%s after resume holds %d entries (scratch files were snapshotted)", d, len(ents))
		}
	}
}

// CommitWithoutSlug runs bb commit without a slug and without a terminal:
// bb must list the running bottle instead of guessing.
func CommitWithoutSlug(t *testing.T, h Harness) {
	e := NewEnv(t, h)
	slug := NewSlug("picker")
	StartBottle(t, h, e, slug, testimage.Options{})
	var out, errb bytes.Buffer
	c := cli.New()
	c.SetArgs([]string{"--home", e.Home.Dir, "commit"})
	c.SetIn(strings.NewReader(""))
	c.SetOut(&out)
	c.SetErr(&errb)
	err := c.ExecuteContext(context.Background())
	if err == nil {
		t.Fatal("bb commit without a slug and without a terminal succeeded")
	}
	if !strings.Contains(err.Error(), "no SLUG given") || !strings.Contains(err.Error(), slug+" ("+h.Backend()+")") {
		t.Errorf("bb commit without a slug: %v; want the running bottles listed", err)
	}
}

// ExecChroot runs argv chrooted into dir as root (for harnesses whose
// bottles are directories on this host).
func ExecChroot(dir string, stdin io.Reader, argv ...string) ([]byte, error) {
	var out, errb bytes.Buffer
	code, err := standin.Exec(context.Background(), standin.ExecSpec{Root: dir, Argv: argv, Stdin: stdin, Stdout: &out, Stderr: &errb})
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return out.Bytes(), fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// BuildStandins compiles the stand-in executables into a new temporary
// directory and returns it with a function that removes it (for TestMain).
func BuildStandins() (string, func(), error) {
	dir, err := os.MkdirTemp("", "bb-standins-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := standin.Build(context.Background(), dir); err != nil {
		cleanup()
		return "", nil, err
	}
	return dir, cleanup, nil
}

// UseStandins puts the stand-ins in binDir first on PATH and gives them a
// fresh state directory, for the rest of t. It returns the state
// directory.
func UseStandins(t testing.TB, binDir string) string {
	t.Helper()
	RequireRoot(t)
	root := t.TempDir()
	t.Setenv(standin.EnvRoot, root)
	t.Setenv("PATH", binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return root
}
