package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/snapshot"
)

// dirTarArgs is the host tar bb's dir source runs.
func dirTarArgs(dir string) []string { return tarcmd.Args(dir, snapshot.DefaultExcludes, true) }

// guestTarArgs is the tar a Docker bottle runs for bb's exec source.
func guestTarArgs() []string { return tarcmd.Args("/", snapshot.DefaultExcludes, true) }

// seedTarArgs is the tar the seed (bot-bottle's Python commit) runs in
// the bottle.
var seedTarArgs = []string{"tar", "--create", "--exclude=./proc", "--exclude=./sys", "--exclude=./dev", "--exclude=./run", "--file=-", "--directory=/", "."}

// seedDockerfile is the seed's Dockerfile for ADD of the rootfs tar; the
// seed's USER node / WORKDIR /home/node name a user the bench image does
// not have, so root's are used.
const seedDockerfile = "FROM scratch\nADD %s /\nUSER root\nWORKDIR /root\n"

// issue2: bb commit vs docker commit, exec tar | pigz, docker export and
// the seed's pipeline.
func (e *benchEnv) issue2(ctx context.Context) []*step {
	var steps []*step
	for i, b := range e.bottles {
		alts := i == 0 || e.cfg.AllSizes
		steps = append(steps, e.pipelineSteps(b)...)
		steps = append(steps, e.dockerSteps(ctx, b, alts)...)
	}
	return steps
}

// pipelineSteps: bb commit --from-dir on the bottle's merged directory
// (the pipeline alone: host tar, filter, pgzip, store) vs host tar | pigz.
func (e *benchEnv) pipelineSteps(b *bottle) []*step {
	group := fmt.Sprintf("pipeline alone: dir source on the %s bottle's merged directory", b.Size)
	home := filepath.Join(e.cfg.Work, "home-dir-"+b.Size)
	argv := e.bbArgv("--home", home, "commit", "--from-dir", b.Merged, "--slug", b.Slug+"-dir", "--no-load", "--json")
	out := filepath.Join(e.cfg.Work, "pigz-"+b.Size+".tar.gz")
	pigz := tarOK(shJoin(dirTarArgs(b.Merged))) + " | pigz -p " + fmt.Sprint(e.cfg.Cores) + " -1 > " + shQuote(out)
	return []*step{
		{
			ID: "dir-bb/" + b.Size, Issue: 2, Group: group, Tool: "bb", Ref: true, Basis: b.TarBytes,
			Name:   "bb commit --from-dir --no-load (fresh store)",
			Cmd:    shJoin(argv),
			before: func(context.Context) error { return os.RemoveAll(home) },
			run:    e.bbRun(argv, filepath.Join(home, "oci")),
			after:  func(context.Context) error { return os.RemoveAll(home) },
		},
		{
			ID: "dir-pigz/" + b.Size, Issue: 2, Group: group, Tool: "tar | pigz", Basis: b.TarBytes,
			Name: fmt.Sprintf("tar | pigz -p%d -1 > file", e.cfg.Cores),
			Cmd:  pigz,
			run:  shellRun(pigz, out),
			after: func(context.Context) error {
				return os.Remove(out)
			},
		},
	}
}

// dockerSteps: the running Docker bottle.
func (e *benchEnv) dockerSteps(ctx context.Context, b *bottle, alts bool) []*step {
	group := fmt.Sprintf("Docker bottle %s (%s of tar, %d entries)", b.Name, human(b.TarBytes), b.Entries)
	committed := "bot-bottle-committed-" + b.Slug + ":latest"
	rmiCommitted := func(ctx context.Context) error {
		_, _ = quiet(ctx, "docker", "rmi", "-f", committed)
		return nil
	}
	var steps []*step
	bbStep := func(id, name string, warm bool, args ...string) {
		home := filepath.Join(e.cfg.Work, "home-"+id+"-"+b.Size)
		argv := append(e.bbArgv("--home", home, "commit", b.Slug, "--json"), args...)
		s := &step{ID: id + "/" + b.Size, Issue: 2, Group: group, Tool: "bb", Name: name, Cmd: shJoin(argv), Basis: b.TarBytes, Skip: e.dockerBackend}
		load := !strings.Contains(strings.Join(args, " "), "--no-load")
		prepared := false
		s.before = func(ctx context.Context) error {
			if load {
				_ = rmiCommitted(ctx)
			}
			if !warm {
				return os.RemoveAll(home)
			}
			if prepared {
				return nil
			}
			// Warm store: one untimed commit first, so the base image's
			// layers are in the store as after any earlier commit.
			prepared = true
			_ = os.RemoveAll(home)
			if _, err := measure(ctx, nil, argv...); err != nil {
				return err
			}
			if load {
				_ = rmiCommitted(ctx)
			}
			return nil
		}
		s.run = e.bbRun(argv, filepath.Join(home, "oci"))
		s.after = func(ctx context.Context) error {
			if load {
				_ = rmiCommitted(ctx)
			}
			if !warm {
				return os.RemoveAll(home)
			}
			return nil
		}
		e.onCleanup(func() { _ = os.RemoveAll(home); _ = rmiCommitted(context.Background()) })
		steps = append(steps, s)
	}
	bbStep("commit-store-warm", "bb commit --no-load (incremental, base layers in store)", true, "--no-load")
	steps[len(steps)-1].Ref = true
	bbStep("commit-store-cold", "bb commit --no-load (incremental, empty store)", false, "--no-load")
	bbStep("commit-store-full", "bb commit --no-load --full (empty store)", false, "--no-load", "--full")
	bbStep("commit-load-warm", "bb commit + load (incremental, base layers in store)", true)
	bbStep("commit-load-full", "bb commit + load --full (empty store)", false, "--full")

	if !alts {
		return steps
	}
	n := fmt.Sprint(e.cfg.Cores)
	// docker commit: the overlay diff, uncompressed, in dockerd.
	commitTag := "bb-bench-docker-commit:" + b.Size
	steps = append(steps, &step{
		ID: "docker-commit/" + b.Size, Issue: 2, Group: group, Tool: "docker commit", Daemon: true, Basis: b.TarBytes,
		Name: "docker commit",
		Cmd:  "docker commit " + b.Name + " " + commitTag,
		run: func(ctx context.Context) (sample, error) {
			r, err := measure(ctx, nil, "docker", "commit", b.Name, commitTag)
			if err != nil {
				return sample{}, err
			}
			r.Out = imageSize(ctx, commitTag) - imageSize(ctx, b.Image)
			return r.sample, nil
		},
		after: func(ctx context.Context) error { _, err := quiet(ctx, "docker", "rmi", "-f", commitTag); return err },
	})
	steps = append(steps, e.diffLoadStep(b, group))
	// docker exec tar | pigz: what bb's exec source reads, compressed by
	// the fastest parallel gzip.
	out := filepath.Join(e.cfg.Work, "exec-pigz-"+b.Size+".tar.gz")
	pigz := tarOK("docker exec --user root "+b.Name+" "+shJoin(guestTarArgs())) + " | pigz -p " + n + " -1 > " + shQuote(out)
	steps = append(steps, &step{
		ID: "exec-pigz/" + b.Size, Issue: 2, Group: group, Tool: "docker exec tar | pigz", Basis: b.TarBytes,
		Name: "docker exec tar | pigz -p" + n + " -1 > file", Cmd: pigz,
		run:   shellRun(pigz, out),
		after: func(context.Context) error { return os.Remove(out) },
	})
	stream := tarOK("docker exec --user root "+b.Name+" "+shJoin(guestTarArgs())) + " | cat > /dev/null"
	steps = append(steps, &step{
		ID: "exec-stream/" + b.Size, Issue: 2, Group: group, Tool: "docker exec tar", Basis: b.TarBytes,
		Name: "docker exec tar | cat > /dev/null (the exec stream alone)", Cmd: stream,
		run: shellRun(stream, ""),
	})
	exp := filepath.Join(e.cfg.Work, "export-"+b.Size+".tar")
	steps = append(steps, &step{
		ID: "docker-export/" + b.Size, Issue: 2, Group: group, Tool: "docker export", Daemon: true, Basis: b.TarBytes,
		Name: "docker export -o file", Cmd: "docker export -o " + shQuote(exp) + " " + b.Name,
		run: func(ctx context.Context) (sample, error) {
			r, err := measure(ctx, nil, "docker", "export", "-o", exp, b.Name)
			if err != nil {
				return sample{}, err
			}
			r.Out = fileSize(exp)
			return r.sample, nil
		},
		after: func(context.Context) error { return os.Remove(exp) },
	})
	// The seed: exec tar to a host file, docker build ADD rootfs.tar.
	seedTag := "bb-bench-seed:" + b.Size
	bctx := filepath.Join(e.cfg.Work, "seed-"+b.Size)
	seedTar := tarOK(fmt.Sprintf("docker exec --user root %s %s > %s/rootfs.tar", b.Name, shJoin(seedTarArgs), shQuote(bctx)))
	seedBuild := fmt.Sprintf("docker build --no-cache -q -t %s %s >/dev/null", seedTag, shQuote(bctx))
	seed := seedTar + " && " + seedBuild
	steps = append(steps, &step{
		ID: "seed/" + b.Size, Issue: 2, Group: group, Tool: "seed pipeline", Daemon: true, Basis: b.TarBytes,
		Name: "seed: docker exec tar > rootfs.tar; docker build (ADD rootfs.tar)", Cmd: seed,
		before: func(context.Context) error {
			if err := os.MkdirAll(bctx, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(bctx, "Dockerfile"), fmt.Appendf(nil, seedDockerfile, "rootfs.tar"), 0o644)
		},
		run: func(ctx context.Context) (sample, error) {
			r, err := shell(ctx, nil, stagedScript("exec tar to file", seedTar, "docker build", seedBuild))
			if err != nil {
				return sample{}, err
			}
			r.Stages = parseStages(r.Stderr)
			r.Out = imageSize(ctx, seedTag)
			return r.sample, nil
		},
		after: func(ctx context.Context) error {
			_, _ = quiet(ctx, "docker", "rmi", "-f", seedTag)
			return os.RemoveAll(bctx)
		},
	})
	e.onCleanup(func() {
		for _, t := range []string{commitTag, seedTag} {
			_, _ = quiet(context.Background(), "docker", "rmi", "-f", t)
		}
	})
	return steps
}

// bbArgv is a bb command line (with -v when asked to keep bb's log).
func (e *benchEnv) bbArgv(args ...string) []string {
	argv := []string{e.cfg.BB}
	if e.cfg.BBVerbose {
		argv = append(argv, "-v")
	}
	return append(argv, args...)
}

// bbRun measures a bb command. The output size is the new layer's size
// from bb commit --json, else what the store grew by; the stages are bb's
// own timings (snapshot, load), when it reports them.
func (e *benchEnv) bbRun(argv []string, store string) func(context.Context) (sample, error) {
	return func(ctx context.Context) (sample, error) {
		before := dirSize(filepath.Join(store, "blobs"))
		r, err := measure(ctx, nil, argv...)
		if err != nil {
			return sample{}, err
		}
		r.Out = dirSize(filepath.Join(store, "blobs")) - before
		bbJSON(r)
		return r.sample, nil
	}
}

// bbJSON takes the layer size and timings from bb commit --json output,
// and keeps the end of bb's stderr.
func bbJSON(r *cmdResult) {
	r.Log = lastLines(r.Stderr, 20)
	var res struct {
		Layer struct {
			Size int64 `json:"size"`
		} `json:"layer"`
		Timings map[string]time.Duration `json:"timings"`
	}
	if json.Unmarshal([]byte(r.Stdout), &res) != nil {
		return
	}
	if res.Layer.Size > 0 {
		r.Out = res.Layer.Size
	}
	if len(res.Timings) > 0 {
		r.Stages = map[string]float64{}
		for k, v := range res.Timings {
			r.Stages["bb "+k] = v.Seconds()
		}
	}
}

// shellRun measures a shell pipeline; the output size is out's size.
func shellRun(script, out string) func(context.Context) (sample, error) {
	return func(ctx context.Context) (sample, error) {
		r, err := shell(ctx, nil, script)
		if err != nil {
			return sample{}, err
		}
		if out != "" {
			r.Out = fileSize(out)
		}
		return r.sample, nil
	}
}

// tarOK runs a GNU tar command line and treats its exit status 1 (a file
// changed while it was read: normal on a live filesystem) as success.
func tarOK(cmd string) string {
	return "{ " + cmd + "; rc=$?; [ $rc -le 1 ] || exit $rc; }"
}

// stagedScript runs name/command pairs in order and reports each one's
// duration on stderr as "STAGE <seconds> <name>".
func stagedScript(pairs ...string) string {
	var b strings.Builder
	b.WriteString("set -e\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "t=$(date +%%s.%%N)\n%s\necho \"STAGE $(awk \"BEGIN{print $(date +%%s.%%N) - $t}\") %s\" >&2\n", pairs[i+1], pairs[i])
	}
	return b.String()
}

func parseStages(stderr string) map[string]float64 {
	st := map[string]float64{}
	for _, line := range strings.Split(stderr, "\n") {
		var secs float64
		rest, ok := strings.CutPrefix(line, "STAGE ")
		if !ok {
			continue
		}
		num, name, _ := strings.Cut(rest, " ")
		if _, err := fmt.Sscanf(num, "%g", &secs); err == nil {
			st[name] = secs
		}
	}
	return st
}

// imageSize is the image's size in dockerd (uncompressed, all layers).
func imageSize(ctx context.Context, ref string) int64 {
	out, err := quiet(ctx, "docker", "image", "inspect", "-f", "{{.Size}}", ref)
	if err != nil {
		return 0
	}
	var n int64
	_, _ = fmt.Sscan(out, &n)
	return n
}
