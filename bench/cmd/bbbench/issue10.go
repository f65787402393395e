package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bot-bottle/bb/backends/container"
	"github.com/bot-bottle/bb/internal/testing/testimage"
)

// Issue 10 needs no Docker and no debootstrap bottle: it generates its
// trees under BENCH_DIR (cached) on top of a minimal root filesystem
// (BusyBox, GNU tar, GNU find), so the smolvm stand-in can exec in them.
//
//	incr-600m   the 600 MB tree (BENCH_INCR_MB), changed by 50 MB
//	            (BENCH_INCR_CHANGE_MB) between the first and second commit
//	scale-10g   a 10 GB tree (BENCH_SCALE_GB): commit time and RSS
//	scale-1m    1M small files (BENCH_SCALE_FILES): commit time and RSS
//
// The change: new sources and two binaries under home/agent/work (most
// of its bytes), 300 rewritten base sources, 100 deleted ones.
const (
	incrChangeRewrites = 300
	incrChangeDeletes  = 100
	incrWork           = "home/agent/work"
)

// incrTree is a generated bench tree.
type incrTree struct {
	Dir   string
	Files int // source files
	BinMB int
}

// genIncrTree writes (once, cached by a marker file) a minimal root
// filesystem plus files sources and binMB of binaries into dir.
func genIncrTree(dir string, files, binMB int, smallFiles bool) (*incrTree, error) {
	t := &incrTree{Dir: dir, Files: files, BinMB: binMB}
	marker := dir + ".done"
	want := fmt.Sprintf("%d %d %v", files, binMB, smallFiles)
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return t, nil
	}
	logf("generating %s (%d files, %d MB of binaries)", dir, files, binMB)
	_ = os.Remove(marker)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := testimage.BuildRootfs(dir, testimage.Options{Findutils: true}); err != nil {
		return nil, err
	}
	for i := 0; i < files; i++ {
		if err := t.writeSource(i, smallFiles); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, binRoot), 0o755); err != nil {
		return nil, err
	}
	for i, n := range binSizes(binMB, 1) {
		r := rand.New(rand.NewPCG(1, 1<<32+uint64(i)))
		if err := writeFile(filepath.Join(dir, binName(i)), 0o755, func(w io.Writer) error { return binaryFile(w, r, n) }); err != nil {
			return nil, err
		}
	}
	return t, os.WriteFile(marker, []byte(want), 0o644)
}

// writeSource writes source file i as generated (same bytes every time).
func (t *incrTree) writeSource(i int, small bool) error {
	p := filepath.Join(t.Dir, srcPath(i))
	if small {
		p = filepath.Join(t.Dir, fmt.Sprintf("%s/d%04d/f%04d.txt", srcRoot, i/1000, i%1000))
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(1, uint64(i)))
	n := textSize(r)
	if small {
		n = 64 + r.IntN(128)
	}
	return writeFile(p, 0o644, func(w io.Writer) error { return textFile(w, r, n) })
}

// reset undoes applyChange.
func (t *incrTree) reset() error {
	if err := os.RemoveAll(filepath.Join(t.Dir, "home/agent")); err != nil {
		return err
	}
	for i := 0; i < incrChangeRewrites+incrChangeDeletes; i++ {
		if err := t.writeSource(changedSource(i, t.Files), false); err != nil {
			return err
		}
	}
	return nil
}

func changedSource(i, files int) int { return (i * 7919) % files }

// applyChange makes the agent's change of about mb megabytes and returns
// the paths it added or rewrote (relative), for the gzip reference.
func (t *incrTree) applyChange(mb int) ([]string, error) {
	var paths []string
	r := rand.New(rand.NewPCG(10, 10))
	for i := 0; i < incrChangeRewrites; i++ {
		k := changedSource(i, t.Files)
		p := filepath.Join(t.Dir, srcPath(k))
		n := textSize(r)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return nil, err
		}
		err = textFile(f, r, n)
		f.Close()
		if err != nil {
			return nil, err
		}
		paths = append(paths, srcPath(k))
	}
	for i := incrChangeRewrites; i < incrChangeRewrites+incrChangeDeletes; i++ {
		if err := os.Remove(filepath.Join(t.Dir, srcPath(changedSource(i, t.Files)))); err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	var written int64
	total := int64(mb) << 20
	// a fifth as sources, the rest as two binaries
	for i := 0; written < total/5; i++ {
		rel := fmt.Sprintf("%s/src/m%02d/f%04d.go", incrWork, i/200, i)
		if err := os.MkdirAll(filepath.Join(t.Dir, filepath.Dir(rel)), 0o755); err != nil {
			return nil, err
		}
		n := textSize(r)
		if err := writeFile(filepath.Join(t.Dir, rel), 0o644, func(w io.Writer) error { return textFile(w, r, n) }); err != nil {
			return nil, err
		}
		paths = append(paths, rel)
		written += int64(n)
	}
	rest := total - written
	for i, n := range []int64{rest / 2, rest - rest/2} {
		rel := fmt.Sprintf("%s/bin/tool%d", incrWork, i)
		if err := os.MkdirAll(filepath.Join(t.Dir, filepath.Dir(rel)), 0o755); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(t.Dir, rel), 0o755, func(w io.Writer) error { return binaryFile(w, r, n) }); err != nil {
			return nil, err
		}
		paths = append(paths, rel)
	}
	return paths, nil
}

// incrTreeCmd resets or changes a generated incremental tree (the one
// issue 10's steps use, 30000 sources), to measure a step by hand:
// bbbench incr-tree reset|change DIR [MB].
func incrTreeCmd(args []string) error {
	if len(args) < 2 || (args[0] != "reset" && args[0] != "change") {
		return fmt.Errorf("usage: bbbench incr-tree reset|change DIR [MB]")
	}
	t := &incrTree{Dir: args[1], Files: 30000}
	if args[0] == "reset" {
		return t.reset()
	}
	mb := 50
	if len(args) > 2 {
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return fmt.Errorf("MB: %w", err)
		}
		mb = n
	}
	_, err := t.applyChange(mb)
	return err
}

// commitJSON is what the issue 10 steps read of bb commit --json.
type commitJSON struct {
	Layer struct {
		Size int64 `json:"size"`
	} `json:"layer"`
	Incremental *struct {
		Parent string `json:"parent"`
		Depth  int    `json:"depth"`
		Full   string `json:"full"`
	} `json:"incremental"`
}

func (e *benchEnv) issue10(ctx context.Context) []*step {
	mb := envInt("BENCH_INCR_MB", 600)
	changeMB := envInt("BENCH_INCR_CHANGE_MB", 50)
	files := 30000
	binMB := max(mb-files*4096/(1<<20)-8, 10) // sources average ~4 KiB
	tree, err := genIncrTree(filepath.Join(e.cfg.Bench, fmt.Sprintf("incr-%dm", mb)), files, binMB, false)
	if err != nil {
		return []*step{{ID: "incr10-setup", Issue: 10, Group: "incremental", Name: "generated tree", Skip: err.Error()}}
	}
	if err := tree.reset(); err != nil {
		return []*step{{ID: "incr10-setup", Issue: 10, Group: "incremental", Name: "generated tree", Skip: err.Error()}}
	}
	n, entries, _ := tarSize(ctx, tree.Dir)
	group := fmt.Sprintf("incremental commits: generated tree of %s as tar (%d entries), %d MB changed", human(n), entries, changeMB)
	var steps []*step
	home := filepath.Join(e.cfg.Work, "home-incr")
	e.onCleanup(func() { _ = os.RemoveAll(home); _ = tree.reset() })

	type backend struct {
		id, name string
		env      []string
		argv     []string
		skip     string
	}
	backends := []backend{{
		id: "dir", name: "dir backend",
		argv: e.bbArgv("--home", home, "commit", "--from-dir", tree.Dir, "--slug", "incr10", "--json"),
	}}
	if ci, err := e.setupContainerStandin(ctx, tree.Dir); err != nil {
		backends = append(backends, backend{id: "container", name: "container stand-in", skip: err.Error()})
	} else {
		env := append(append([]string{}, ci.Env...), noDocker)
		b := backend{id: "container", name: "container stand-in, --no-load (stream and store)", env: env,
			argv: e.bbArgv("--home", home, "commit", "bench", "--backend", "macos-container", "--json", "--no-load")}
		backends = append(backends, b)
		bl := b
		bl.id, bl.name = "container-load", "container stand-in (stream, store, container image load)"
		bl.argv = bl.argv[:len(bl.argv)-1]
		backends = append(backends, bl)
	}
	if si, err := e.setupStandin(ctx, tree.Dir); err != nil {
		backends = append(backends, backend{id: "smol", name: "smolvm stand-in", skip: err.Error()})
	} else {
		env := append(append([]string{}, si.Env...), noDocker)
		b := backend{id: "smol", name: "smolvm stand-in, --no-load (stream and store)", env: env,
			argv: e.bbArgv("--home", home, "commit", "bench", "--backend", "smolmachines", "--json", "--no-load")}
		b.skip = e.smolBackend(ctx, si)
		backends = append(backends, b)
		bp := b
		bp.id, bp.name = "smol-pack", "smolvm stand-in (stream, store, flatten, serve, pack)"
		bp.argv = bp.argv[:len(bp.argv)-1]
		backends = append(backends, bp)
		if before := os.Getenv("BENCH_BB_BEFORE"); before != "" {
			// Another bb binary (an older build) on the same steps, in the
			// same run: before/after numbers of a change to the pack path.
			bb := bp
			bb.id, bb.name = "smol-pack-before", bp.name+", bb "+before
			bb.argv = append([]string{before}, bp.argv[1:]...)
			backends = append(backends, bb)
		}
	}
	commitOnce := func(ctx context.Context, b backend) (*commitJSON, *cmdResult, error) {
		r, err := measure(ctx, b.env, b.argv...)
		if err != nil {
			return nil, r, err
		}
		var res commitJSON
		if err := json.Unmarshal([]byte(r.Stdout), &res); err != nil {
			return nil, r, fmt.Errorf("bb commit --json: %w", err)
		}
		r.Out = res.Layer.Size
		r.Log = lastLines(r.Stderr, 20)
		return &res, r, nil
	}
	fresh := func(context.Context) error {
		if err := os.RemoveAll(home); err != nil {
			return err
		}
		return tree.reset()
	}
	for _, b := range backends {
		steps = append(steps, &step{
			ID: "incr10-first-" + b.id, Issue: 10, Group: group, Tool: "bb", Basis: n, Skip: b.skip,
			Name: "first commit, " + b.name, Cmd: strings.Join(b.env, " ") + " " + shJoin(b.argv),
			before: fresh,
			run: func(ctx context.Context) (sample, error) {
				_, r, err := commitOnce(ctx, b)
				if err != nil {
					return sample{}, err
				}
				return r.sample, nil
			},
		}, &step{
			ID: "incr10-second-" + b.id, Issue: 10, Group: group, Tool: "bb", Skip: b.skip,
			Name: fmt.Sprintf("second commit after a %d MB change, %s", changeMB, b.name), Cmd: strings.Join(b.env, " ") + " " + shJoin(b.argv),
			before: func(ctx context.Context) error {
				if err := fresh(ctx); err != nil {
					return err
				}
				if _, _, err := commitOnce(ctx, b); err != nil {
					return err
				}
				_, err := tree.applyChange(changeMB)
				return err
			},
			run: func(ctx context.Context) (sample, error) {
				res, r, err := commitOnce(ctx, b)
				if err != nil {
					return sample{}, err
				}
				if res.Incremental == nil || res.Incremental.Parent == "" {
					return sample{}, fmt.Errorf("the second commit was not incremental: %+v", res.Incremental)
				}
				return r.sample, nil
			},
		})
	}

	// The reference: the change as tar | gzip -1.
	list := filepath.Join(e.cfg.Work, "incr-change.list")
	steps = append(steps, &step{
		ID: "incr10-gzip", Issue: 10, Group: group, Tool: "tar | gzip -1",
		Name: "the change alone: tar of the added and rewritten files | gzip -1 (reference for the layer size)",
		Cmd:  "tar --create --null --files-from=LIST | gzip -1 | wc -c",
		before: func(ctx context.Context) error {
			if err := tree.reset(); err != nil {
				return err
			}
			paths, err := tree.applyChange(changeMB)
			if err != nil {
				return err
			}
			return os.WriteFile(list, []byte(strings.Join(paths, "\x00")+"\x00"), 0o644)
		},
		run: func(ctx context.Context) (sample, error) {
			r, err := shell(ctx, nil, fmt.Sprintf("tar --create --directory=%s --file=- --null --files-from=%s | gzip -1 | wc -c", shQuote(tree.Dir), shQuote(list)))
			if err != nil {
				return sample{}, err
			}
			r.Out, _ = strconv.ParseInt(strings.TrimSpace(r.Stdout), 10, 64)
			return r.sample, nil
		},
		after: func(context.Context) error { return tree.reset() },
	})

	// Push of the second snapshot to a registry that has the first: the
	// bytes the registry stored for it.
	regDir := filepath.Join(e.cfg.Work, "registry-incr")
	var reg *registry
	var before int64
	e.onCleanup(func() { reg.Stop() })
	skip := ""
	if _, err := os.Stat(registryBinary); err != nil {
		skip = registryBinary + " not installed (apt-get install docker-registry)"
	}
	dirArgv := backends[0].argv
	steps = append(steps, &step{
		ID: "incr10-push", Issue: 10, Group: group, Tool: "bb", Skip: skip,
		Name: "bb push of the second snapshot to a registry that has the first (output: bytes the registry stored)",
		Cmd:  "bb push incr10 127.0.0.1:PORT/incr10:2",
		before: func(ctx context.Context) error {
			if err := fresh(ctx); err != nil {
				return err
			}
			_ = os.RemoveAll(regDir)
			var err error
			if reg, err = startRegistry(ctx, regDir); err != nil {
				return err
			}
			if _, _, err := commitOnce(ctx, backends[0]); err != nil {
				return err
			}
			if _, err := quiet(ctx, e.bbArgv("--home", home, "push", "incr10", reg.Addr+"/incr10:1")...); err != nil {
				return err
			}
			if _, err := tree.applyChange(changeMB); err != nil {
				return err
			}
			if _, err := quiet(ctx, dirArgv...); err != nil {
				return err
			}
			before = dirSize(regDir)
			return nil
		},
		run: func(ctx context.Context) (sample, error) {
			r, err := measure(ctx, nil, e.bbArgv("--home", home, "push", "incr10", reg.Addr+"/incr10:2")...)
			if err != nil {
				return sample{}, err
			}
			r.Out = dirSize(regDir) - before
			return r.sample, nil
		},
		after: func(context.Context) error {
			reg.Stop()
			reg = nil
			return os.RemoveAll(regDir)
		},
	})
	if e.cfg.Only == nil || e.cfg.Only.MatchString("scale") {
		steps = append(steps, e.scaleSteps(ctx)...)
	}
	return steps
}

// scaleSteps: bb commit --from-dir of a 10 GB tree and of a tree of 1M
// small files (full, then incremental after a small change), each next
// to a tree a tenth of its size (BENCH_SCALE_SMALL_GB, _SMALL_FILES), for
// time per byte or entry (linear growth) and peak RSS.
func (e *benchEnv) scaleSteps(ctx context.Context) []*step {
	gb := envInt("BENCH_SCALE_GB", 10)
	smallGB := envInt("BENCH_SCALE_SMALL_GB", max(gb/10, 1))
	nfiles := envInt("BENCH_SCALE_FILES", 1000000)
	smallFiles := envInt("BENCH_SCALE_SMALL_FILES", max(nfiles/10, 1000))
	var steps []*step
	home := filepath.Join(e.cfg.Work, "home-scale")
	e.onCleanup(func() { _ = os.RemoveAll(home) })
	sizes := map[string]struct{ n, entries int64 }{}
	add := func(id, name string, t *incrTree, err error, incremental bool) {
		if err != nil {
			steps = append(steps, &step{ID: id, Issue: 10, Group: "scale", Name: name, Skip: err.Error()})
			return
		}
		_ = os.RemoveAll(filepath.Join(t.Dir, "home/agent"))
		sz, ok := sizes[t.Dir]
		if !ok { // a tar pass over a million files takes minutes: once per tree
			sz.n, sz.entries, _ = tarSize(ctx, t.Dir)
			sizes[t.Dir] = sz
		}
		n, entries := sz.n, sz.entries
		argv := e.bbArgv("--home", home, "commit", "--from-dir", t.Dir, "--slug", "scale", "--json")
		s := &step{ID: id, Issue: 10, Group: "scale: bb commit --from-dir", Tool: "bb", Basis: n, Entries: entries,
			Name: fmt.Sprintf("%s (%s as tar, %d entries)", name, human(n), entries), Cmd: shJoin(argv),
			before: func(ctx context.Context) error { return os.RemoveAll(home) },
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, nil, argv...)
				if err != nil {
					return sample{}, err
				}
				bbJSON(r)
				return r.sample, nil
			},
		}
		if incremental {
			marker := filepath.Join(t.Dir, incrWork, "touched")
			s.Name = fmt.Sprintf("%s, second commit after touching one file (%d entries listed and compared)", name, entries)
			s.before = func(ctx context.Context) error {
				if err := os.RemoveAll(home); err != nil {
					return err
				}
				_ = os.RemoveAll(filepath.Join(t.Dir, "home/agent"))
				if _, err := quiet(ctx, argv...); err != nil {
					return err
				}
				time.Sleep(1100 * time.Millisecond)
				if err := os.MkdirAll(filepath.Dir(marker), 0o755); err != nil {
					return err
				}
				return os.WriteFile(marker, []byte("x"), 0o644)
			}
			s.after = func(context.Context) error { return os.RemoveAll(filepath.Join(t.Dir, "home/agent")) }
		}
		steps = append(steps, s)
	}
	for _, size := range []struct {
		id string
		gb int
	}{{"incr10-scale-big-small", smallGB}, {"incr10-scale-big", gb}} {
		t, err := genIncrTree(filepath.Join(e.cfg.Bench, fmt.Sprintf("scale-%dg", size.gb)), 1000, size.gb<<10, false)
		add(size.id, fmt.Sprintf("%d GB tree", size.gb), t, err, false)
	}
	for _, size := range []struct {
		id    string
		files int
	}{{"incr10-scale-files-small", smallFiles}, {"incr10-scale-files", nfiles}} {
		t, err := genIncrTree(filepath.Join(e.cfg.Bench, fmt.Sprintf("scale-%df", size.files)), size.files, 0, true)
		add(size.id, fmt.Sprintf("%d small files", size.files), t, err, false)
		add(strings.Replace(size.id, "files", "files-incr", 1), fmt.Sprintf("%d small files", size.files), t, err, true)
	}
	return steps
}

// setupContainerStandin builds the Apple container stand-in, runs the
// container bot-bottle-bench from a small image, and makes the
// container's root filesystem the bench tree (a symlink in the
// stand-in's state), as setupStandin does for smolvm.
func (e *benchEnv) setupContainerStandin(ctx context.Context, tree string) (*standin, error) {
	pkg := filepath.Join(e.cfg.Root, "internal", "testing", "standin", "container")
	if _, err := os.Stat(pkg); err != nil {
		return nil, fmt.Errorf("the container stand-in (internal/testing/standin/container) is not in this checkout")
	}
	s := &standin{Bin: filepath.Join(e.cfg.Bench, "bin", "standin", "container"), Root: filepath.Join(e.cfg.Work, "standin-container")}
	if _, err := quiet(ctx, "go", "-C", e.cfg.Root, "build", "-o", s.Bin, "./internal/testing/standin/container"); err != nil {
		return nil, err
	}
	s.Env = []string{"BB_CONTAINER_BIN=" + s.Bin, "BB_STANDIN_ROOT=" + s.Root}
	small := filepath.Join(e.cfg.Work, "container-base")
	if err := testimage.BuildRootfs(small, testimage.Options{}); err != nil {
		return nil, err
	}
	img, err := testimage.HostImageConfig(ctx, small, e.cfg.Work, testimage.ExitingConfig())
	if err != nil {
		return nil, err
	}
	ref := "docker.io/library/bb-bench-incr:latest"
	archive := filepath.Join(e.cfg.Work, "container-base.tar")
	f, err := os.Create(archive)
	if err != nil {
		return nil, err
	}
	err = container.WriteArchive(ctx, f, img, ref)
	f.Close()
	if err != nil {
		return nil, err
	}
	run := func(args ...string) error {
		_, err := measure(ctx, s.Env, append([]string{s.Bin}, args...)...)
		return err
	}
	if err := run("image", "load", "-i", archive); err != nil {
		return nil, err
	}
	if err := run(append([]string{"run", "--detach", "--name", "bot-bottle-bench", ref}, testimage.OwnCommand...)...); err != nil {
		return nil, err
	}
	e.onCleanup(func() { _, _ = measure(context.Background(), s.Env, s.Bin, "delete", "--force", "bot-bottle-bench") })
	rootfs := filepath.Join(s.Root, "container", "containers", "bot-bottle-bench", "rootfs")
	if err := os.RemoveAll(rootfs); err != nil {
		return nil, err
	}
	if err := os.Symlink(tree, rootfs); err != nil {
		return nil, err
	}
	e.note("container stand-in: %s, container bot-bottle-bench = %s", s.Bin, tree)
	return s, nil
}
