package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is what bbbench run was asked to do.
type config struct {
	Root     string // repository root
	Bench    string // cache and output directory (.bench)
	Work     string // scratch space for one run (.bench/run)
	BB       string // bb binary
	Runs     int
	Cores    int
	Issues   map[int]bool
	Only     *regexp.Regexp
	AllSizes bool // run the alternatives on every bottle, not only the largest
	Keep     bool // keep outputs and scratch files
	// BBVerbose runs bb commit with -v; its log ends up in the JSON.
	BBVerbose bool
}

// bottle is a bench bottle as found at the start of a run.
type bottle struct {
	Size   string `json:"size"`   // "1g", "small"
	Name   string `json:"name"`   // bot-bottle-bench
	Slug   string `json:"slug"`   // bench
	Image  string `json:"image"`  // bb-bench-base:1g
	Merged string `json:"merged"` // overlay2 merged directory on the host
	// TarBytes is the size of the bottle's filesystem as the tar stream
	// bb reads (default excludes); MB/s of commit steps divide it.
	TarBytes int64 `json:"tar_bytes"`
	Entries  int64 `json:"entries"`
}

// step is one measured command.
type step struct {
	ID    string `json:"id"` // stable key: what/bottle size
	Issue int    `json:"issue"`
	Group string `json:"group"` // the table it belongs to
	Name  string `json:"name"`  // row label
	Tool  string `json:"tool"`  // "bb" or the alternative's name
	Cmd   string `json:"cmd"`   // what is timed, as a shell command
	// Ref marks the row the group's "× bb" column divides by.
	Ref bool `json:"ref,omitempty"`
	// Basis is the byte count MB/s divides; 0 uses the step's output size.
	Basis int64 `json:"basis_bytes,omitempty"`
	// Entries is the number of entries of the tree a step reads (scale
	// steps: time per entry).
	Entries int64 `json:"entries,omitempty"`
	// Daemon says the work happens in dockerd, whose memory the RSS
	// column does not include.
	Daemon bool `json:"daemon,omitempty"`
	// RSSOnly rows report a server's memory, not a timed command.
	RSSOnly bool   `json:"rss_only,omitempty"`
	Skip    string `json:"skipped,omitempty"`
	Err     string `json:"error,omitempty"`
	Note    string `json:"note,omitempty"`

	Runs   []sample `json:"runs"`
	Median *sample  `json:"median,omitempty"`

	before, after func(context.Context) error
	run           func(context.Context) (sample, error)
}

// target is a ratio the issues ask for.
type target struct {
	Issue int     `json:"issue"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Limit float64 `json:"limit"`
	Unit  string  `json:"unit"` // "×" or "MiB"
	AtMin bool    `json:"at_least,omitempty"`
	Pass  bool    `json:"pass"`
	// Missing: a step the target needs did not run.
	Missing bool `json:"missing,omitempty"`
}

// report is the raw JSON written next to results.md.
type report struct {
	Started  time.Time         `json:"started"`
	Host     map[string]string `json:"host"`
	Runs     int               `json:"runs"`
	Cores    int               `json:"cores"`
	Bottles  []*bottle         `json:"bottles"`
	Steps    []*step           `json:"steps"`
	Targets  []target          `json:"targets"`
	Notes    []string          `json:"notes"`
	Duration float64           `json:"duration_s"`
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	root := fs.String("root", ".", "repository root")
	benchDir := fs.String("bench-dir", "", "cache and output directory (default ROOT/.bench)")
	bb := fs.String("bb", "", "bb binary (default: build ./cmd/bb into BENCH_DIR/bin/bb)")
	runs := fs.Int("runs", envInt("BENCH_RUNS", 3), "runs per step; the median is reported (env BENCH_RUNS)")
	cores := fs.Int("cores", runtime.NumCPU(), "cores for pigz -p")
	issues := fs.String("issues", envStr("BENCH_ISSUES", "2,3,4,10"), "issues whose benchmarks to run (env BENCH_ISSUES)")
	only := fs.String("only", envStr("BENCH_ONLY", ""), "run only steps whose group or name matches this regexp (env BENCH_ONLY)")
	allSizes := fs.Bool("all-sizes", false, "run the alternatives on the small bottle too")
	keep := fs.Bool("keep", false, "keep outputs and scratch files under BENCH_DIR/run")
	bbVerbose := fs.Bool("bb-verbose", false, "run bb commit with -v and keep its log in results.json")
	_ = fs.Parse(args)

	absRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	cfg := &config{Root: absRoot, Runs: max(1, *runs), Cores: max(1, *cores), Issues: map[int]bool{}, AllSizes: *allSizes, Keep: *keep, BBVerbose: *bbVerbose}
	cfg.Bench = *benchDir
	if cfg.Bench == "" {
		cfg.Bench = filepath.Join(absRoot, ".bench")
	}
	cfg.Work = filepath.Join(cfg.Bench, "run")
	for _, s := range strings.Split(*issues, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			cfg.Issues[n] = true
		}
	}
	if *only != "" {
		if cfg.Only, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("-only: %w", err)
		}
	}
	if err := os.RemoveAll(cfg.Work); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Work, 0o755); err != nil {
		return err
	}
	cfg.BB = *bb
	if cfg.BB == "" {
		cfg.BB = filepath.Join(cfg.Bench, "bin", "bb")
		logf("building bb into %s", cfg.BB)
		if _, err := quiet(ctx, "go", "-C", cfg.Root, "build", "-o", cfg.BB, "./cmd/bb"); err != nil {
			return err
		}
	}

	start := time.Now()
	rep := &report{Started: start.UTC(), Runs: cfg.Runs, Cores: cfg.Cores, Host: hostInfo(ctx)}
	env := &benchEnv{cfg: cfg, rep: rep}
	defer env.cleanup()
	if err := env.discover(ctx); err != nil {
		return err
	}

	var steps []*step
	if cfg.Issues[2] {
		steps = append(steps, env.issue2(ctx)...)
	}
	if cfg.Issues[3] {
		steps = append(steps, env.issue3(ctx)...)
	}
	if cfg.Issues[4] {
		steps = append(steps, env.issue4(ctx)...)
	}
	if cfg.Issues[10] {
		steps = append(steps, env.issue10(ctx)...)
	}
	if cfg.Only != nil {
		steps = slices.DeleteFunc(steps, func(s *step) bool {
			return !cfg.Only.MatchString(s.Group) && !cfg.Only.MatchString(s.Name)
		})
	}
	rep.Steps = steps

	// Round robin: run i of every step, then run i+1, so slow drifts
	// (page cache, dockerd state) spread over all tools alike.
	for i := 0; i < cfg.Runs; i++ {
		for _, s := range steps {
			if s.Skip != "" || s.Err != "" {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			logf("[%d/%d] issue %d, %s: %s", i+1, cfg.Runs, s.Issue, s.Group, s.Name)
			smp, err := s.once(ctx)
			if err != nil {
				s.Err = err.Error()
				logf("  failed: %v", err)
				continue
			}
			s.Runs = append(s.Runs, smp)
			logf("  %.2f s, peak RSS %s, output %s", smp.Wall, mib(smp.RSSKiB), human(smp.Out))
		}
	}
	for _, s := range steps {
		s.Median = median(s.Runs)
	}
	rep.Host["loadavg_end"] = loadavg()
	rep.Targets = env.targets()
	rep.Duration = time.Since(start).Seconds()

	md := renderMarkdown(rep)
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(cfg.Bench, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cfg.Bench, "results.json"), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	logf("wrote %s and %s", filepath.Join(cfg.Bench, "results.md"), filepath.Join(cfg.Bench, "results.json"))
	return nil
}

// once runs the step one time with its setup and cleanup.
func (s *step) once(ctx context.Context) (sample, error) {
	if s.before != nil {
		if err := s.before(ctx); err != nil {
			return sample{}, fmt.Errorf("preparing: %w", err)
		}
	}
	smp, err := s.run(ctx)
	if s.after != nil {
		if aerr := s.after(context.WithoutCancel(ctx)); aerr != nil && err == nil {
			err = fmt.Errorf("cleaning up: %w", aerr)
		}
	}
	return smp, err
}

// median returns the run with the median wall time (the lower middle one
// for an even count), and the largest RSS of all runs.
func median(runs []sample) *sample {
	if len(runs) == 0 {
		return nil
	}
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b sample) int {
		switch {
		case a.Wall < b.Wall:
			return -1
		case a.Wall > b.Wall:
			return 1
		}
		return 0
	})
	m := sorted[(len(sorted)-1)/2]
	for _, r := range runs {
		m.RSSKiB = max(m.RSSKiB, r.RSSKiB)
	}
	return &m
}

// benchEnv is the state shared by the steps of one run.
type benchEnv struct {
	cfg      *config
	rep      *report
	bottles  []*bottle
	bbCmds   map[string]bool
	cleanups []func()
	// dockerBackend says bb can commit the Docker bench bottles.
	dockerBackend string // "" when it can; else why not
}

func (e *benchEnv) note(format string, a ...any) {
	e.rep.Notes = append(e.rep.Notes, fmt.Sprintf(format, a...))
}

func (e *benchEnv) onCleanup(f func()) { e.cleanups = append(e.cleanups, f) }

func (e *benchEnv) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	if !e.cfg.Keep {
		_ = os.RemoveAll(e.cfg.Work)
	}
}

// discover finds the bench bottles and what bb can do.
func (e *benchEnv) discover(ctx context.Context) error {
	for _, sz := range []struct{ size, name, slug string }{
		{"1g", "bot-bottle-bench", "bench"},
		{"small", "bot-bottle-bench-small", "bench-small"},
	} {
		if !e.cfg.Issues[2] && !e.cfg.Issues[3] && !e.cfg.Issues[4] {
			break // issue 10 generates its own trees
		}
		out, err := quiet(ctx, "docker", "inspect", "-f", "{{.State.Running}} {{.Config.Image}} {{.GraphDriver.Data.MergedDir}}", sz.name)
		f := strings.Fields(out)
		if err != nil || len(f) != 3 || f[0] != "true" {
			e.note("bottle %s is not running: build it with bench/build-bottle.sh (its steps are skipped)", sz.name)
			continue
		}
		b := &bottle{Size: sz.size, Name: sz.name, Slug: sz.slug, Image: f[1], Merged: f[2]}
		// One untimed read of the whole bottle: warms the page cache for
		// every tool alike and gives the byte count MB/s divides.
		logf("reading %s once (page cache, size)", b.Name)
		n, entries, err := tarSize(ctx, b.Merged)
		if err != nil {
			return fmt.Errorf("reading %s: %w", b.Merged, err)
		}
		b.TarBytes, b.Entries = n, entries
		logf("  %s: %s as tar, %d entries", b.Name, human(n), entries)
		e.bottles = append(e.bottles, b)
	}
	e.rep.Bottles = e.bottles
	if len(e.bottles) == 0 && (e.cfg.Issues[2] || e.cfg.Issues[3] || e.cfg.Issues[4]) {
		return errors.New("no bench bottle is running: run bench/build-bottle.sh (or make bench) first")
	}

	help, err := quiet(ctx, e.cfg.BB, "--help")
	if err != nil {
		return fmt.Errorf("running bb: %w", err)
	}
	e.bbCmds = map[string]bool{}
	inCmds := false
	for _, line := range strings.Split(help, "\n") {
		switch {
		case strings.HasPrefix(line, "Available Commands:"):
			inCmds = true
		case inCmds && strings.HasPrefix(line, "  "):
			e.bbCmds[strings.Fields(line)[0]] = true
		case inCmds:
			inCmds = false
		}
	}
	e.dockerBackend = e.checkDockerBackend(ctx)
	if e.dockerBackend != "" {
		e.note("bb commit on Docker bottles: %s", e.dockerBackend)
	}
	return nil
}

// checkDockerBackend asks bb list whether it sees the bench bottle as a
// running docker bottle.
func (e *benchEnv) checkDockerBackend(ctx context.Context) string {
	home := filepath.Join(e.cfg.Work, "home-probe")
	defer os.RemoveAll(home)
	out, err := quiet(ctx, e.cfg.BB, "--home", home, "list", "--json")
	if err != nil {
		return "bb list failed: " + err.Error()
	}
	var rows []struct {
		Slug, Backend string
		Running       bool
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return "bb list --json: " + err.Error()
	}
	for _, r := range rows {
		if r.Backend == "docker" && r.Running && strings.HasPrefix(r.Slug, "bench") {
			return ""
		}
	}
	return "not available in this bb yet (bb list does not show the running bench bottles as docker bottles)"
}

func (e *benchEnv) hasBB(cmd string) bool { return e.bbCmds[cmd] }

// largest is the 1 GB bottle, or the largest one running.
func (e *benchEnv) largest() *bottle {
	if len(e.bottles) == 0 {
		return nil
	}
	return e.bottles[0]
}

// tarSize streams the directory as bb's dir source would and counts the
// bytes and entries.
func tarSize(ctx context.Context, dir string) (int64, int64, error) {
	cmd := exec.CommandContext(ctx, "tar", dirTarArgs(dir)[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	n, cerr := io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			return 0, 0, err
		}
	}
	if cerr != nil {
		return 0, 0, cerr
	}
	var entries int64
	_ = filepath.WalkDir(dir, func(string, fs.DirEntry, error) error { entries++; return nil })
	return n, entries, nil
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func hostInfo(ctx context.Context) map[string]string {
	h := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version()}
	if v, err := quiet(ctx, "docker", "version", "-f", "{{.Server.Version}} (API {{.Server.APIVersion}})"); err == nil {
		h["dockerd"] = v
	}
	if v, err := quiet(ctx, "docker", "info", "-f", "{{.Driver}}"); err == nil {
		h["storage_driver"] = v
	}
	h["loadavg_start"] = loadavg()
	if v, err := quiet(ctx, "uname", "-r"); err == nil {
		h["kernel"] = v
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if l, _, ok := strings.Cut(string(b), "\n"); ok {
			h["memory"] = strings.Join(strings.Fields(l)[1:], " ")
		}
	}
	return h
}

// loadavg is the 1, 5 and 15 minute load averages.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bbbench: "+format+"\n", a...)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
