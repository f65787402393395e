package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// seedGuestTar is the tar the seed runs inside a smolvm machine
// (smolmachines freezer: tar --gzip to /var/tmp, then machine cp).
const seedGuestTarball = "var/tmp/.bot-bottle-commit.tar.gz"

func seedGuestTarArgs(root string) []string {
	return []string{"tar", "--create", "--gzip",
		"--exclude=./proc", "--exclude=./sys", "--exclude=./dev", "--exclude=./run",
		"--exclude=./tmp", "--exclude=./var/tmp",
		"--file=" + filepath.Join(root, seedGuestTarball), "--directory=" + root, "."}
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
	group := fmt.Sprintf("smolvm bottle (stand-in; root filesystem %s: %s of tar, %d entries)", guest, human(n), entries)
	var steps []*step

	// bb: commit through the smolmachines backend and the stand-in; it
	// serves the image on 127.0.0.1 and runs smolvm pack create against it.
	steps = append(steps, &step{
		ID: "smol-bb", Issue: 4, Group: group, Tool: "bb", Ref: true, Basis: n,
		Name: "bb commit (smolmachines: stream, store, serve, pack), DOCKER_HOST unreachable",
		Skip: "the smolmachines backend and the smolvm stand-in (internal/standin/smolvm) are not in this bb yet",
	})

	// The seed: tar --gzip in the guest to /var/tmp, machine cp to the host,
	// docker build ADD rootfs.tar.gz, docker save, crane push to a local
	// registry (and smolvm pack create, when the stand-in can run it).
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
	guestTar := tarOK(shJoin(seedGuestTarArgs(guest)))
	machineCp := fmt.Sprintf("cp %s %s/rootfs.tar.gz && rm -f %s", shQuote(filepath.Join(guest, seedGuestTarball)), shQuote(bctx), shQuote(filepath.Join(guest, seedGuestTarball)))
	build := fmt.Sprintf("docker build --no-cache -q -t %s %s >/dev/null", tag, shQuote(bctx))
	save := fmt.Sprintf("docker save -o %s/committed.image.tar %s", shQuote(bctx), tag)
	pushf := func() string {
		return fmt.Sprintf("%s push --insecure %s/committed.image.tar %s/bot-bottle-committed:bench", shQuote(crane), shQuote(bctx), reg.Addr)
	}
	steps = append(steps, &step{
		ID: "smol-seed", Issue: 4, Group: group, Tool: "seed smolvm pipeline", Daemon: true, Basis: n, Skip: skip,
		Name: "seed: tar --gzip in guest; machine cp; docker build (ADD rootfs.tar.gz); docker save; crane push",
		Cmd:  guestTar + " && " + machineCp + " && " + build + " && " + save + " && crane push ...",
		Note: "without the stand-in, the guest's tar and machine cp run as host tar and cp on the same directory; smolvm pack create is not included",
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
			r, err := shell(ctx, nil, stagedScript(
				"1 guest tar --gzip", guestTar,
				"2 machine cp", machineCp,
				"3 docker build", build,
				"4 docker save", save,
				"5 crane push", pushf(),
			))
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
