package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// seedGuestTarball is where the seed's smolmachines freezer writes the
// root filesystem inside the VM before machine cp.
const seedGuestTarball = "/var/tmp/.bot-bottle-commit.tar.gz"

// seedGuestTarArgs is the tar the seed runs inside the VM (tar --gzip to
// /var/tmp; GNU tar runs gzip -6, one core).
func seedGuestTarArgs(root string) []string {
	return []string{"tar", "--create", "--gzip",
		"--exclude=./proc", "--exclude=./sys", "--exclude=./dev", "--exclude=./run",
		"--exclude=./tmp", "--exclude=./var/tmp",
		"--file=" + filepath.Join(root, seedGuestTarball), "--directory=" + root, "."}
}

// noDocker points the Docker clients at nothing, so a step that used the
// daemon would fail.
const noDocker = "DOCKER_HOST=unix:///nonexistent/docker.sock"

// standin is the smolvm stand-in with the bench machine in its state.
type standin struct {
	Bin  string
	Root string // BB_STANDIN_ROOT
	Env  []string
}

// setupStandin builds the smolvm stand-in from this checkout and registers
// the guest directory as the running machine bot-bottle-bench.
func (e *benchEnv) setupStandin(ctx context.Context, guest string) (*standin, error) {
	pkg := filepath.Join(e.cfg.Root, "internal", "testing", "standin", "smolvm")
	if _, err := os.Stat(pkg); err != nil {
		return nil, fmt.Errorf("the smolvm stand-in (internal/testing/standin/smolvm) is not in this checkout yet")
	}
	s := &standin{Bin: filepath.Join(e.cfg.Bench, "bin", "standin", "smolvm"), Root: filepath.Join(e.cfg.Work, "standin")}
	if _, err := quiet(ctx, "go", "-C", e.cfg.Root, "build", "-o", s.Bin, "./internal/testing/standin/smolvm"); err != nil {
		return nil, err
	}
	m := filepath.Join(s.Root, "smolvm", "machines", "bot-bottle-bench")
	if err := os.MkdirAll(m, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(guest, filepath.Join(m, "rootfs")); err != nil {
		return nil, err
	}
	rec, _ := json.Marshal(map[string]any{
		"name": "bot-bottle-bench", "state": "running", "image": nil, "entrypoint": []string{},
		"cmd": []string{"sleep", "infinity"}, "workdir": "/root", "user": "", "created_at": time.Now().Unix(), "pid": nil,
		"env": []string{"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	})
	if err := os.WriteFile(filepath.Join(m, "record.json"), rec, 0o644); err != nil {
		return nil, err
	}
	s.Env = []string{"BB_SMOLVM_BIN=" + s.Bin, "BB_STANDIN_ROOT=" + s.Root}
	if v, err := quiet(ctx, s.Bin, "--version"); err == nil {
		e.note("smolvm stand-in: %s (behaviour of %s), machine bot-bottle-bench = %s", s.Bin, v, guest)
	}
	return s, nil
}

// smolBackend says whether bb sees the stand-in's machine as a running
// smolmachines bottle ("" when it does).
func (e *benchEnv) smolBackend(ctx context.Context, s *standin) string {
	home := filepath.Join(e.cfg.Work, "home-probe-smol")
	defer os.RemoveAll(home)
	r, err := measure(ctx, s.Env, e.cfg.BB, "--home", home, "list", "--json")
	if err != nil {
		return "bb list failed: " + err.Error()
	}
	var rows []struct {
		Slug, Backend string
		Running       bool
	}
	_ = json.Unmarshal([]byte(r.Stdout), &rows)
	for _, row := range rows {
		if row.Slug == "bench" && row.Backend == "smolmachines" && row.Running {
			return ""
		}
	}
	return "bb's smolmachines backend is not in this bb yet (bb list does not show the stand-in's machine)"
}

// issue4: bb commit of a smolvm bottle (stand-in) to a served, packed
// image vs the seed's smolvm pipeline.
func (e *benchEnv) issue4(ctx context.Context) []*step {
	guest := filepath.Join(e.cfg.Bench, "guest-1g")
	if _, err := os.Stat(guest + ".done"); err != nil {
		return []*step{{ID: "smol-setup", Issue: 4, Group: "smolvm", Name: "smolvm guest root filesystem", Skip: guest + " missing: run bench/build-bottle.sh"}}
	}
	n, entries, err := tarSize(ctx, guest)
	if err != nil {
		return []*step{{ID: "smol-setup", Issue: 4, Group: "smolvm", Name: "smolvm guest root filesystem", Skip: err.Error()}}
	}
	group := fmt.Sprintf("smolvm bottle through the stand-in (the 1g bottle as a directory: %s of tar, %d entries)", human(n), entries)
	var steps []*step

	si, siErr := e.setupStandin(ctx, guest)
	bbSkip := ""
	if siErr != nil {
		bbSkip = siErr.Error()
	} else {
		bbSkip = e.smolBackend(ctx, si)
	}
	// bb: stream through smolvm machine exec -i, store, serve on 127.0.0.1,
	// smolvm pack create pulls it; no Docker daemon reachable.
	home := filepath.Join(e.cfg.Work, "home-smol")
	bbStep := func(id, name string, ref bool, extra ...string) {
		argv := append(e.bbArgv("--home", home, "commit", "bench", "--backend", "smolmachines", "--json"), extra...)
		var env []string
		if si != nil {
			env = append(append([]string{}, si.Env...), noDocker)
		}
		steps = append(steps, &step{
			ID: id, Issue: 4, Group: group, Tool: "bb", Ref: ref, Basis: n, Skip: bbSkip,
			Name:   name,
			Cmd:    strings.Join(env, " ") + " " + shJoin(argv),
			before: func(context.Context) error { return os.RemoveAll(home) },
			run: func(ctx context.Context) (sample, error) {
				r, err := measure(ctx, env, argv...)
				if err != nil {
					return sample{}, err
				}
				r.Out = dirSize(filepath.Join(home, "oci", "blobs"))
				bbJSON(r)
				return r.sample, nil
			},
			after: func(context.Context) error { return os.RemoveAll(home) },
		})
	}
	bbStep("smol-bb", "bb commit (stream, store, serve, smolvm pack create), DOCKER_HOST unreachable", true)
	bbStep("smol-bb-store", "bb commit --no-load (stream and store only)", false, "--no-load")
	e.onCleanup(func() { _ = os.RemoveAll(home) })

	// The seed: tar --gzip in the guest to /var/tmp, machine cp to the host,
	// docker build ADD rootfs.tar.gz, docker save, crane push to a local
	// registry, smolvm pack create from it.
	bctx := filepath.Join(e.cfg.Work, "seed-smol")
	tag := "bb-bench-seed-smol:latest"
	crane := findCrane()
	var reg *registry
	regDir := filepath.Join(e.cfg.Work, "registry-seed-smol")
	e.onCleanup(func() { reg.Stop(); _, _ = quiet(context.Background(), "docker", "rmi", "-f", tag) })
	skip := lookSkip("docker")
	if crane == "" {
		skip = craneHint
	}
	if _, err := os.Stat(registryBinary); err != nil {
		skip = registryBinary + " not installed (apt-get install docker-registry)"
	}
	var guestTar, machineCp, note string
	var env []string
	if si != nil {
		env = si.Env
		sv := shQuote(si.Bin)
		guestTar = tarOK(sv + " machine exec --name bot-bottle-bench -- " + shJoin(seedGuestTarArgs("/")))
		machineCp = fmt.Sprintf("%s machine cp bot-bottle-bench:%s %s/rootfs.tar.gz && %s machine exec --name bot-bottle-bench -- rm -f %s",
			sv, seedGuestTarball, shQuote(bctx), sv, seedGuestTarball)
	} else {
		guestTar = tarOK(shJoin(seedGuestTarArgs(guest)))
		machineCp = fmt.Sprintf("cp %s %s/rootfs.tar.gz && rm -f %s", shQuote(filepath.Join(guest, seedGuestTarball)), shQuote(bctx), shQuote(filepath.Join(guest, seedGuestTarball)))
		note = "no stand-in: the guest's tar and machine cp run as host tar and cp on the same directory, and smolvm pack create is left out"
	}
	build := fmt.Sprintf("docker build --no-cache -q -t %s %s >/dev/null", tag, shQuote(bctx))
	save := fmt.Sprintf("docker save -o %s/committed.image.tar %s", shQuote(bctx), tag)
	name := "seed: tar --gzip in guest; machine cp; docker build (ADD rootfs.tar.gz); docker save; crane push"
	if si != nil {
		name += "; smolvm pack create"
	}
	steps = append(steps, &step{
		ID: "smol-seed", Issue: 4, Group: group, Tool: "seed smolvm pipeline", Daemon: true, Basis: n, Skip: skip,
		Name: name, Note: note,
		Cmd: guestTar + " && " + machineCp + " && " + build + " && " + save + " && crane push ... && smolvm pack create ...",
		before: func(ctx context.Context) error {
			var err error
			if reg, err = startRegistry(ctx, regDir); err != nil {
				return err
			}
			if err := os.MkdirAll(bctx, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(bctx, "Dockerfile"), fmt.Appendf(nil, seedDockerfile, "rootfs.tar.gz"), 0o644)
		},
		run: func(ctx context.Context) (sample, error) {
			ref := reg.Addr + "/bot-bottle-committed:bench"
			stages := []string{
				"1 guest tar --gzip", guestTar,
				"2 machine cp", machineCp,
				"3 docker build", build,
				"4 docker save", save,
				"5 crane push", fmt.Sprintf("%s push --insecure %s/committed.image.tar %s >/dev/null", shQuote(crane), shQuote(bctx), ref),
			}
			if si != nil {
				stages = append(stages, "6 smolvm pack create", fmt.Sprintf("%s pack create --image %s -o %s/committed-smolmachine >/dev/null", shQuote(si.Bin), ref, shQuote(bctx)))
			}
			r, err := measure(ctx, env, "bash", "-o", "pipefail", "-c", stagedScript(stages...))
			if err != nil {
				return sample{}, err
			}
			r.Stages = parseStages(r.Stderr)
			r.Out = fileSize(filepath.Join(bctx, "committed.image.tar"))
			return r.sample, nil
		},
		after: func(ctx context.Context) error {
			reg.Stop()
			reg = nil
			_, _ = quiet(ctx, "docker", "rmi", "-f", tag)
			_ = os.Remove(filepath.Join(guest, seedGuestTarball))
			return os.RemoveAll(bctx)
		},
	})
	return steps
}
