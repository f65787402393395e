package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/rootfs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// record is what the stand-in keeps about a container.
type record struct {
	ID          string        `json:"id"`
	Image       string        `json:"image"`
	ImageDesc   v1.Descriptor `json:"imageDescriptor"`
	State       string        `json:"state"`
	Created     time.Time     `json:"created"`
	Started     time.Time     `json:"started"`
	Env         []string      `json:"env"`
	WorkingDir  string        `json:"workingDir"`
	User        string        `json:"user"`
	Entrypoint  []string      `json:"entrypoint"`
	Cmd         []string      `json:"cmd"`
	Arch        string        `json:"arch"`
	Labels      map[string]string
	AutoRemove  bool `json:"autoRemove"`
	rootfs, dir string
}

func (st *state) containerDir(id string) string { return filepath.Join(st.root, "containers", id) }

func (st *state) load(id string) (*record, error) {
	var r record
	dir := st.containerDir(id)
	if err := standin.ReadJSON(filepath.Join(dir, "config.json"), &r); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	r.dir, r.rootfs = dir, filepath.Join(dir, "rootfs")
	return &r, nil
}

func (st *state) save(r *record) error {
	return standin.WriteJSON(filepath.Join(r.dir, "config.json"), r)
}

func (st *state) all() ([]*record, error) {
	ents, err := os.ReadDir(filepath.Join(st.root, "containers"))
	if err != nil {
		return nil, err
	}
	var out []*record
	for _, e := range ents {
		if r, err := st.load(e.Name()); err == nil && r != nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// managedContainer is container 1.x's JSON shape of a container.
type managedContainer struct {
	ID            string          `json:"id"`
	Configuration json.RawMessage `json:"configuration"`
	Status        containerStatus `json:"status"`
}

type containerStatus struct {
	State       string   `json:"state"`
	Networks    []string `json:"networks"`
	StartedDate *float64 `json:"startedDate,omitempty"`
}

func (r *record) managed() managedContainer {
	user := map[string]any{"raw": map[string]string{"userString": r.User}}
	cfg := map[string]any{
		"id":           r.ID,
		"image":        map[string]any{"reference": r.Image, "descriptor": r.ImageDesc},
		"platform":     map[string]string{"os": "linux", "architecture": r.Arch},
		"labels":       r.Labels,
		"creationDate": float64(r.Created.Unix()),
		"initProcess": map[string]any{
			"executable":       first(append(append([]string{}, r.Entrypoint...), r.Cmd...)),
			"arguments":        rest(append(append([]string{}, r.Entrypoint...), r.Cmd...)),
			"environment":      r.Env,
			"workingDirectory": orSlash(r.WorkingDir),
			"terminal":         false,
			"user":             user,
		},
		"resources": map[string]any{"cpus": 4, "memoryInBytes": 1 << 30},
	}
	b, _ := json.Marshal(cfg)
	mc := managedContainer{ID: r.ID, Configuration: b, Status: containerStatus{State: r.State, Networks: []string{}}}
	if !r.Started.IsZero() {
		// Swift's JSONEncoder writes dates as seconds since 2001-01-01.
		s := r.Started.Sub(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).Seconds()
		mc.Status.StartedDate = &s
	}
	return mc
}

func first(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

func rest(a []string) []string {
	if len(a) < 2 {
		return []string{}
	}
	return a[1:]
}

func orSlash(s string) string {
	if s == "" {
		return "/"
	}
	return s
}

func (st *state) cmdList(args []string) error {
	all, format, quiet := false, "table", false
	for i := 0; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-a", "--all":
			all = true
		case "-q", "--quiet":
			quiet = true
		case "--format":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			format, i = v, j
		default:
			return errf("invalidArgument", "unexpected argument %q", args[i])
		}
	}
	rs, err := st.all()
	if err != nil {
		return err
	}
	var shown []*record
	for _, r := range rs {
		if all || r.State == "running" {
			shown = append(shown, r)
		}
	}
	if format == "json" {
		out := []managedContainer{}
		for _, r := range shown {
			out = append(out, r.managed())
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if !quiet {
		fmt.Fprintln(tw, "ID\tIMAGE\tOS\tARCH\tSTATE\tIP\tCPUS\tMEMORY\tSTARTED")
	}
	for _, r := range shown {
		if quiet {
			fmt.Fprintln(tw, r.ID)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\tlinux\t%s\t%s\t\t4\t1024 MB\t%s\n", r.ID, r.Image, r.Arch, r.State, r.Started.Format(time.RFC3339))
	}
	return tw.Flush()
}

func (st *state) cmdInspect(args []string) error {
	var out []managedContainer
	var missing []string
	for _, id := range args {
		r, err := st.load(id)
		if err != nil {
			return err
		}
		if r == nil {
			missing = append(missing, id)
			continue
		}
		out = append(out, r.managed())
	}
	if len(missing) > 0 {
		return errf("notFound", "container not found: %s", strings.Join(missing, ", "))
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Println(string(b))
	return nil
}

func (st *state) get(id string) (*record, error) {
	r, err := st.load(id)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errf("notFound", "container not found: %s", id)
	}
	return r, nil
}

// cmdRun creates a container from a loaded image: the image's layers are
// extracted into the container's root filesystem and it is marked
// running. Only detached runs are supported.
func (st *state) cmdRun(ctx context.Context, args []string) error {
	var id, user, workdir, entrypoint string
	var env []string
	detach, autoRemove := false, false
	labels := map[string]string{}
	i := 0
loop:
	for ; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-d", "--detach":
			detach = true
		case "--rm", "--remove":
			autoRemove = true
		case "--name":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			id, i = v, j
		case "-e", "--env":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			env, i = append(env, v), j
		case "-u", "--user":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			user, i = v, j
		case "-w", "--workdir", "--cwd":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			workdir, i = v, j
		case "--entrypoint":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			entrypoint, i = v, j
		case "-l", "--label":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			k, val, _ := strings.Cut(v, "=")
			labels[k], i = val, j
		case "--network", "-c", "--cpus", "-m", "--memory", "-p", "--publish", "-v", "--volume", "--mount":
			_, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			i = j
		default:
			if strings.HasPrefix(args[i], "-") {
				return errf("invalidArgument", "unexpected argument %q", args[i])
			}
			break loop
		}
	}
	if i >= len(args) {
		return errf("invalidArgument", "missing expected argument '<image>'")
	}
	ref, cmdArgs := args[i], args[i+1:]
	if !detach {
		return errf("unsupported", "the stand-in only runs detached containers (--detach)")
	}
	if id == "" {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		id = hex.EncodeToString(b)
	}
	if !nameValid(id) {
		return errf("invalidArgument", "container ID %s is not a valid container ID", id)
	}
	if r, err := st.load(id); err != nil {
		return err
	} else if r != nil {
		return errf("exists", "container with id %s already exists", id)
	}
	d, err := st.findImage(ref)
	if err != nil {
		return err
	}
	if d == nil {
		return errf("notFound", "image with reference %s", ref)
	}
	img, err := st.image(*d)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	dir := st.containerDir(id)
	tmp := dir + ".creating"
	_ = os.RemoveAll(tmp)
	if err := rootfs.ExtractImage(ctx, img, filepath.Join(tmp, "rootfs"), rootfs.Options{Devices: true}); err != nil {
		_ = os.RemoveAll(tmp)
		return errf("internalError", "unpacking %s: %v", ref, err)
	}
	if err := fixCaps(ctx, img, filepath.Join(tmp, "rootfs")); err != nil {
		_ = os.RemoveAll(tmp)
		return errf("internalError", "unpacking %s: %v", ref, err)
	}
	now := time.Now().UTC()
	r := &record{
		ID: id, Image: ref, ImageDesc: v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
		State: "running", Created: now, Started: now,
		Env: append(append([]string{}, cf.Config.Env...), env...), WorkingDir: cf.Config.WorkingDir,
		User: cf.Config.User, Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
		Arch: cf.Architecture, Labels: labels, AutoRemove: autoRemove, dir: tmp,
	}
	if r.Arch == "" {
		r.Arch = runtime.GOARCH
	}
	if user != "" {
		r.User = user
	}
	if workdir != "" {
		r.WorkingDir = workdir
	}
	if entrypoint != "" {
		r.Entrypoint = []string{entrypoint}
	}
	if len(cmdArgs) > 0 {
		r.Cmd = cmdArgs
	}
	if err := st.save(r); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return err
	}
	fmt.Println(id)
	return nil
}

// cmdExec runs a command chrooted into a running container's root
// filesystem, as container exec does inside the VM.
func (st *state) cmdExec(ctx context.Context, args []string) error {
	var user, uid, gid, workdir string
	var env []string
	interactive := false
	i := 0
loop:
	for ; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-i", "--interactive":
			interactive = true
		case "-t", "--tty", "-it", "-ti":
			if args[i] != "-t" && args[i] != "--tty" {
				interactive = true
			}
		case "-d", "--detach":
			return errf("unsupported", "the stand-in does not detach exec")
		case "-u", "--user":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			user, i = v, j
		case "--uid":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			uid, i = v, j
		case "--gid":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			gid, i = v, j
		case "-e", "--env":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			env, i = append(env, v), j
		case "-w", "--workdir", "--cwd":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			workdir, i = v, j
		default:
			if strings.HasPrefix(args[i], "-") {
				return errf("invalidArgument", "unexpected argument %q", args[i])
			}
			break loop
		}
	}
	if i >= len(args) {
		return errf("invalidArgument", "missing expected argument '<container-id>'")
	}
	id, argv := args[i], args[i+1:]
	r, err := st.get(id)
	if err != nil {
		return err
	}
	if r.State != "running" {
		return errf("invalidState", "container %s is not running", id)
	}
	if len(argv) == 0 {
		return errf("invalidArgument", "no command specified for exec")
	}
	if user == "" {
		user = r.User
	}
	if uid != "" {
		user = uid
		if gid != "" {
			user += ":" + gid
		}
	}
	if workdir == "" {
		workdir = r.WorkingDir
	}
	var stdin io.Reader
	if interactive {
		stdin = bufio.NewReaderSize(os.Stdin, 1<<16)
	}
	// The process writes into a pipe the CLI relays to its stdout; once
	// the process has exited, the CLI waits at most DrainTimeout for the
	// relay to finish (container 1.2.2 ProcessIO.swift:241-258,
	// Timeout.run(seconds: 3)) and fails with a CancellationError.
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	relayed := make(chan error, 1)
	go func() {
		_, err := io.Copy(os.Stdout, pr)
		relayed <- err
	}()
	code, err := standin.Exec(ctx, standin.ExecSpec{
		Root: r.rootfs, Argv: argv, Env: append(append([]string{}, r.Env...), env...),
		Dir: workdir, User: user, Stdin: stdin, Stdout: pw, Stderr: os.Stderr,
	})
	pw.Close()
	if err != nil {
		return errf("internalError", "failed to exec process %v", err)
	}
	select {
	case <-relayed:
	case <-time.After(drainTimeout()):
		return errf("unknown", "CancellationError()")
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// DrainTimeout is how long container exec relays output after the
// process exited (ProcessIO.wait: Timeout.run(seconds: 3)).
const DrainTimeout = 3 * time.Second

// EnvDrainTimeout shortens DrainTimeout for tests (a Go duration).
const EnvDrainTimeout = "BB_STANDIN_CONTAINER_DRAIN_TIMEOUT"

func drainTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv(EnvDrainTimeout)); err == nil && d > 0 {
		return d
	}
	return DrainTimeout
}

// nameValid is container 1.2.2's container name rule
// (Sources/ContainerResource/Container/ManagedContainer.swift:45-52).
func nameValid(name string) bool {
	return len(name) <= 63 && nameRE.MatchString(name)
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

// cmdLogs prints a container's output: the stand-in runs no init
// process, so there is none.
func (st *state) cmdLogs(args []string) error {
	id := ""
	for i := 0; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-n":
			if _, j, err := flagValue(args, i); err != nil {
				return err
			} else {
				i = j
			}
		case "-f", "--follow", "--boot":
		default:
			if strings.HasPrefix(args[i], "-") {
				return errf("invalidArgument", "unexpected argument %q", args[i])
			}
			id = args[i]
		}
	}
	_, err := st.get(id)
	return err
}

// cmdExport writes the container's root filesystem as a PAX tar, as
// container 1.2.1+ does for running containers after freezing their
// filesystem: like the real CLI it writes the whole archive to a
// temporary file first, then moves it to -o FILE or copies it to stdout
// in 4 KiB chunks.
func (st *state) cmdExport(ctx context.Context, args []string) error {
	output, id := "", ""
	for i := 0; i < len(args); i++ {
		switch flagName(args[i]) {
		case "-o", "--output":
			v, j, err := flagValue(args, i)
			if err != nil {
				return err
			}
			output, i = v, j
		default:
			if strings.HasPrefix(args[i], "-") || id != "" {
				return errf("invalidArgument", "unexpected argument %q", args[i])
			}
			id = args[i]
		}
	}
	if id == "" {
		return errf("invalidArgument", "missing expected argument '<container-id>'")
	}
	r, err := st.get(id)
	if err != nil {
		return err
	}
	if r.State != "running" && r.State != "stopped" {
		return errf("invalidState", "container must be running or stopped")
	}
	tmp, err := os.CreateTemp(st.root, "export-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = standin.WriteTree(ctx, bw, r.rootfs, standin.TreeOptions{})
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if output != "" {
		return os.Rename(tmp.Name(), output)
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return errf("internalError", "unable to open archive for reading")
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			if _, werr := os.Stdout.Write(buf[:n]); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// cmdStop stops containers. Apple's container deletes a container when it
// stops (bot-bottle runs them that way), so the stand-in removes it.
func (st *state) cmdStop(args []string) error {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "-s" || a == "--signal" || a == "-t" || a == "--time" {
			i++
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		r, err := st.get(a)
		if err != nil {
			return err
		}
		if err := os.RemoveAll(r.dir); err != nil {
			return err
		}
		fmt.Println(a)
	}
	return nil
}

func (st *state) cmdDelete(args []string) error {
	force := false
	var ids []string
	for _, a := range args {
		switch a {
		case "-f", "--force":
			force = true
		default:
			if strings.HasPrefix(a, "-") {
				return errf("invalidArgument", "unexpected argument %q", a)
			}
			ids = append(ids, a)
		}
	}
	for _, id := range ids {
		r, err := st.get(id)
		if err != nil {
			return err
		}
		if r.State == "running" && !force {
			return errf("invalidState", "container %s is running; stop it first or delete with --force", id)
		}
		if err := os.RemoveAll(r.dir); err != nil {
			return err
		}
		fmt.Println(id)
	}
	return nil
}

// fixCaps re-applies security.capability after rootfs's extraction
// (see standin.FixCaps).
func fixCaps(ctx context.Context, img v1.Image, dir string) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var rs []io.Reader
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		rs = append(rs, rc)
	}
	return standin.FixCaps(ctx, rs, dir)
}
