package adversarial

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/internal/testing/testregistry"
)

// killAt runs bin with args and kills it (SIGKILL) after d, or lets it
// finish if it is faster. It reports whether the process was killed.
func killAt(t *testing.T, d time.Duration, bin string, args ...string) bool {
	t.Helper()
	cmd := command(bin, args...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return true
	}
}

// killSeed picks the seed of the kill times: BB_ADVERSARIAL_SEED when
// set, else the clock. It is logged, so that a failure can be run again
// with the same kill times (as far as the machine's speed allows).
func killSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BB_ADVERSARIAL_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BB_ADVERSARIAL_SEED=%q: want a number", s)
		}
		seed = v
	}
	t.Logf("kill times from seed %d (BB_ADVERSARIAL_SEED)", seed)
	return seed
}

// timed runs bin with args to the end and returns how long it took.
func timed(t *testing.T, bin string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	out, err := command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("bb %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

// resumes checks that slug's current snapshot extracts (dir backend).
func resumes(t *testing.T, bin, home, slug string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	if b, err := command(bin, "--home", home, "resume", slug, "--dir", out).CombinedOutput(); err != nil {
		t.Fatalf("resume %s: %v\n%s", slug, err, b)
	}
	if _, err := os.Stat(filepath.Join(out, "home/node/random")); err != nil {
		t.Fatalf("resumed tree of %s: %v", slug, err)
	}
}

// bb killed at random points of commit, import and export: the store
// stays valid, the slug's current snapshot (old or new) resumes, and the
// temporary files of the killed runs go once they are stale.
func TestKillDuringCommitImportExport(t *testing.T) {
	bin := bbBinary(t)
	home := t.TempDir()
	store := filepath.Join(home, "oci")
	src := t.TempDir()
	tree(t, src, 1, 1<<20)
	base := []string{"--home", home}
	commit := append(base, "commit", "--from-dir", src, "--slug", "k", "--keep", "1")
	took := timed(t, bin, commit...)
	rng := rand.New(rand.NewPCG(killSeed(t), 7))
	killed := 0
	for i := 0; i < 4; i++ {
		tree(t, src, uint64(10+i), 1<<20)
		if killAt(t, time.Duration(rng.Int64N(int64(took)+1)), bin, commit...) {
			killed++
		}
		checkStore(t, store)
		resumes(t, bin, home, "k")
	}

	archive := filepath.Join(t.TempDir(), "k.tar")
	took = timed(t, bin, append(base, "export", "k", "-o", archive)...)
	for i := 0; i < 3; i++ {
		target := filepath.Join(filepath.Dir(archive), fmt.Sprintf("x%d.tar", i))
		if killAt(t, time.Duration(rng.Int64N(int64(took)+1)), bin, append(base, "export", "k", "-o", target)...) {
			killed++
		}
		checkStore(t, store)
	}
	took = timed(t, bin, append(base, "import", archive, "--as", "imp")...)
	for i := 0; i < 3; i++ {
		if killAt(t, time.Duration(rng.Int64N(int64(took)+1)), bin, append(base, "import", archive, "--as", fmt.Sprintf("imp%d", i))...) {
			killed++
		}
		checkStore(t, store)
	}
	resumes(t, bin, home, "imp")
	t.Logf("%d of 10 runs killed", killed)

	// Leftovers of the killed runs go once stale: at the next write and
	// at gc (store), at the next export to the same file (export).
	old := time.Now().Add(-2 * time.Hour)
	ages := func(dir, prefix string) int {
		n := 0
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				_ = os.Chtimes(filepath.Join(dir, e.Name()), old, old)
				n++
			}
		}
		return n
	}
	ages(filepath.Join(store, "ingest"), "")
	ages(store, ".index.json.tmp-")
	for i := 0; i < 3; i++ {
		ages(filepath.Dir(archive), iox.StaleTempPrefix(fmt.Sprintf("x%d.tar", i)))
	}
	if out, err := command(bin, append(base, "gc")...).CombinedOutput(); err != nil {
		t.Fatalf("gc: %v\n%s", err, out)
	}
	if n := checkStore(t, store); n != 0 {
		t.Errorf("%d temporary files survived bb gc", n)
	}
	for i := 0; i < 3; i++ {
		target := filepath.Join(filepath.Dir(archive), fmt.Sprintf("x%d.tar", i))
		timed(t, bin, append(base, "export", "k", "-o", target)...)
		if n := ages(filepath.Dir(archive), iox.StaleTempPrefix(target)); n != 0 {
			t.Errorf("%d temporary files of killed exports to %s survived the next export", n, target)
		}
	}
}

// bb push and bb pull killed at random points: the stores stay valid
// and a later push and pull complete.
func TestKillDuringPush(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	bin := bbBinary(t)
	home := t.TempDir()
	src := t.TempDir()
	tree(t, src, 3, 1<<20)
	base := []string{"--home", home}
	timed(t, bin, append(base, "commit", "--from-dir", src, "--slug", "p")...)
	push := append(base, "push", "p", reg.Repo("adversarial/p:v1"))
	rng := rand.New(rand.NewPCG(killSeed(t), 9))
	for i := 0; i < 4; i++ {
		killAt(t, time.Duration(rng.Int64N(int64(300*time.Millisecond))), bin, push...)
		checkStore(t, filepath.Join(home, "oci"))
	}
	timed(t, bin, push...)
	home2 := t.TempDir()
	pull := []string{"--home", home2, "pull", reg.Repo("adversarial/p:v1"), "--as", "p2"}
	for i := 0; i < 4; i++ {
		killAt(t, time.Duration(rng.Int64N(int64(300*time.Millisecond))), bin, pull...)
		if _, err := os.Stat(filepath.Join(home2, "oci")); err == nil {
			checkStore(t, filepath.Join(home2, "oci"))
		}
	}
	if _, err := os.Stat(filepath.Join(home2, "oci")); err == nil {
		if _, ok := tags(t, filepath.Join(home2, "oci"))["p2"]; ok {
			// A killed pull got to the end: pull again under a new name.
			pull[len(pull)-1] = "p3"
		}
	}
	timed(t, bin, pull...)
	checkStore(t, filepath.Join(home2, "oci"))
	resumes(t, bin, home2, pull[len(pull)-1])
}

// A pull refused after the download (its slug is taken here) leaves no
// blobs behind.
func TestRefusedPullLeavesNoBlobs(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{})
	home, home2 := t.TempDir(), t.TempDir()
	a, b := t.TempDir(), t.TempDir()
	tree(t, a, 21, 64<<10)
	tree(t, b, 22, 64<<10)
	mustRun(t, home, "commit", "--from-dir", a, "--slug", "taken")
	mustRun(t, home, "push", "taken", reg.Repo("adversarial/taken:v1"))
	mustRun(t, home2, "commit", "--from-dir", b, "--slug", "taken")
	count := func() int {
		ents, _ := os.ReadDir(filepath.Join(home2, "oci", "blobs", "sha256"))
		return len(ents)
	}
	before := count()
	if out, err := run(t, home2, "pull", reg.Repo("adversarial/taken:v1")); err == nil {
		t.Fatalf("pull over a taken slug succeeded:\n%s", out)
	}
	if after := count(); after != before {
		t.Errorf("refused pull left %d blobs", after-before)
	}
	checkStore(t, filepath.Join(home2, "oci"))
}

// bb export --compression killed at random points while it converts the
// snapshot's layers: the store stays valid, and the next export in that
// compression completes and imports into a snapshot that resumes.
func TestKillDuringConvert(t *testing.T) {
	bin := bbBinary(t)
	home := t.TempDir()
	src := t.TempDir()
	tree(t, src, 31, 2<<20)
	base := []string{"--home", home}
	timed(t, bin, append(base, "commit", "--from-dir", src, "--slug", "cv")...)
	dir := t.TempDir()
	export := func(i int) []string {
		return append(base, "export", "cv", "--compression", "zstd", "-o", filepath.Join(dir, fmt.Sprintf("cv%d.tar", i)))
	}
	// How long a conversion takes: in a store of its own, so this one's
	// copy is not reused by the killed runs.
	home2 := t.TempDir()
	timed(t, bin, "--home", home2, "commit", "--from-dir", src, "--slug", "cv")
	took := timed(t, bin, "--home", home2, "export", "cv", "--compression", "zstd", "-o", filepath.Join(dir, "probe.tar"))
	rng := rand.New(rand.NewPCG(killSeed(t), 11))
	for i := 0; i < 4; i++ {
		killAt(t, time.Duration(rng.Int64N(int64(took)+1)), bin, export(i)...)
		checkStore(t, filepath.Join(home, "oci"))
	}
	timed(t, bin, export(9)...)
	checkStore(t, filepath.Join(home, "oci"))
	home3 := t.TempDir()
	timed(t, bin, "--home", home3, "import", filepath.Join(dir, "cv9.tar"), "--as", "cv")
	resumes(t, bin, home3, "cv")
}
