package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bot-bottle/bb/backends/smolvm"
	"github.com/bot-bottle/bb/internal/iox"
	"github.com/bot-bottle/bb/internal/testing/standin"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/klauspost/compress/zstd"
)

// record is what the stand-in keeps about a machine (a subset of smolvm's
// VmRecord).
type record struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	Image      *string  `json:"image"`
	Entrypoint []string `json:"entrypoint"`
	Cmd        []string `json:"cmd"`
	Env        []string `json:"env"`
	Workdir    string   `json:"workdir"`
	User       string   `json:"user"`
	CreatedAt  int64    `json:"created_at"`
	PID        *int     `json:"pid"`
	Source     string   `json:"source_smolmachine,omitempty"`

	dir string
}

type state struct {
	root string // $BB_STANDIN_ROOT/smolvm
}

func openState() (*state, error) {
	root, err := standin.Root("smolvm")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"machines", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &state{root: root}, nil
}

func (st *state) machineDir(name string) string { return filepath.Join(st.root, "machines", name) }

func (st *state) load(name string) (*record, error) {
	var r record
	dir := st.machineDir(name)
	if err := standin.ReadJSON(filepath.Join(dir, "record.json"), &r); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	r.dir = dir
	return &r, nil
}

func (r *record) rootfs() string { return filepath.Join(r.dir, "rootfs") }

func (r *record) save() error { return standin.WriteJSON(filepath.Join(r.dir, "record.json"), r) }

func machineName(f *flags) string {
	if n := f.value("--name", "-n"); n != "" {
		return n
	}
	return "default"
}

// get returns a machine or smolvm's "not found" error.
func (st *state) get(name string) (*record, error) {
	r, err := st.load(name)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("machine '%s' not found", name)
	}
	return r, nil
}

// running returns a running machine or smolvm's connect errors.
func (st *state) running(name string) (*record, error) {
	r, err := st.get(name)
	if err != nil {
		return nil, err
	}
	if r.State != "running" {
		return nil, fmt.Errorf("machine '%s' is not running. Use 'smolvm machine start --name %s' first.", name, name)
	}
	return r, nil
}

func (st *state) cmdLs(args []string) error {
	f, err := parseFlags(args, []string{"--json", "-v", "--verbose"}, nil, false)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(filepath.Join(st.root, "machines"))
	if err != nil {
		return err
	}
	var rs []*record
	for _, e := range ents {
		if r, err := st.load(e.Name()); err == nil && r != nil {
			// Test hook: a file "state" in the machine's directory sets
			// the state ls reports (created, running, stopped, failed,
			// unreachable, frozen: smolvm 1.9.3 src/config.rs:39-66).
			if b, err := os.ReadFile(filepath.Join(r.dir, "state")); err == nil {
				r.State = strings.TrimSpace(string(b))
			}
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	if f.has("--json") {
		out := []map[string]any{}
		for _, r := range rs {
			out = append(out, map[string]any{
				"name": r.Name, "state": r.State, "cpus": 4, "memory_mib": 8192, "pid": r.PID,
				"mounts": 0, "ports": 0, "created_at": r.CreatedAt, "storage_gb": nil, "overlay_gb": nil,
				"image": r.Image, "entrypoint": r.Entrypoint, "cmd": r.Cmd, "ephemeral": false,
				"gpu": false, "network": false, "labels": map[string]string{}, "restart_policy": "never",
			})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	if len(rs) == 0 {
		fmt.Println("No machines found")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tCPUS\tMEMORY\tMOUNTS\tPORTS\tSTORAGE\tOVERLAY")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t4\t8192 MiB\t0\t0\t20 GiB\t10 GiB\n", r.Name, r.State)
	}
	return tw.Flush()
}

// cmdExec runs a command in a machine. Without -i (or with -t, or with
// --stream) the output is captured and capped at 11 MiB per stream, as
// smolvm's agent does; -i without -t relays stdin and stdout unbuffered.
func (st *state) cmdExec(ctx context.Context, args []string) error {
	f, err := parseFlags(args,
		[]string{"-i", "--interactive", "-t", "--tty", "--stream", "-d", "--detach"},
		[]string{"--name", "-w", "--workdir", "-e", "--env", "--timeout", "--secret-env", "--secret-file"}, true)
	if err != nil {
		return err
	}
	if len(f.command) == 0 {
		return errors.New("the following required arguments were not provided: <COMMAND>...")
	}
	name := machineName(f)
	r, err := st.running(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(r.dir, "interactive-session")); err == nil {
		// smolvm rejects a second exec while an interactive (-it) session
		// holds the VM, with no message (bot-bottle saw "<no stderr>").
		return exitCode(1)
	}
	if f.has("-d", "--detach") {
		return errors.New("the stand-in does not run detached commands")
	}
	interactive, tty := f.has("-i", "--interactive"), f.has("-t", "--tty")
	if interactive && os.Getenv(EnvNoStdin) != "" {
		return errors.New("interactive exec failed: the stdin relay is not available (stand-in test hook)")
	}
	workdir := f.value("-w", "--workdir")
	if workdir == "" {
		workdir = r.Workdir
	}
	if d := f.value("--timeout"); d != "" {
		t, err := time.ParseDuration(d)
		if err != nil {
			return fmt.Errorf("invalid value '%s' for '--timeout <DURATION>'", d)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t)
		defer cancel()
	}
	spec := standin.ExecSpec{
		Root: r.rootfs(), Argv: f.command, Env: append(append([]string{}, r.Env...), f.all("-e", "--env")...),
		Dir: workdir, User: r.User,
	}
	if interactive && !tty {
		spec.Stdin = os.Stdin
		out := bufio.NewWriterSize(os.Stdout, 1<<16)
		spec.Stdout, spec.Stderr = out, os.Stderr
		code, err := standin.Exec(ctx, spec)
		if ferr := out.Flush(); err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
		return exitCode(code)
	}
	if interactive {
		spec.Stdin = os.Stdin
	}
	stdout, stderr := &capped{max: MaxExecOutput}, &capped{max: MaxExecOutput}
	spec.Stdout, spec.Stderr = stdout, stderr
	code, err := standin.Exec(ctx, spec)
	if err != nil {
		return err
	}
	if stdout.over || stderr.over {
		return fmt.Errorf("command output exceeded %d bytes and was truncated. Use streaming exec (exec_stream / execStream) for large output.", MaxExecOutput)
	}
	os.Stdout.Write(stdout.buf.Bytes())
	os.Stderr.Write(stderr.buf.Bytes())
	return exitCode(code)
}

// capped keeps at most max bytes and remembers whether more came.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.over = true
		if room > 0 {
			c.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return c.buf.Write(p)
}

// cmdCp copies one file between the host and a machine (NAME:PATH).
func (st *state) cmdCp(ctx context.Context, args []string) error {
	f, err := parseFlags(args, nil, []string{"--mode", "--uid", "--gid"}, false)
	if err != nil {
		return err
	}
	if len(f.pos) != 2 {
		return errors.New("usage: smolvm machine cp <SRC> <DST>")
	}
	src, dst := f.pos[0], f.pos[1]
	if n, p, ok := cutMachine(src); ok {
		r, err := st.running(n)
		if err != nil {
			return err
		}
		root, err := os.OpenRoot(r.rootfs())
		if err != nil {
			return err
		}
		defer root.Close()
		in, err := root.Open(guestPath(p))
		if err != nil {
			return fmt.Errorf("failed to read %s in machine '%s': %v", p, n, err)
		}
		defer in.Close()
		out, err := os.Create(dst)
		if err != nil {
			return err
		}
		// The host's read loop stops past the cap, removes the partial
		// file and fails (src/agent/client.rs:2224-2260), within a 600 s
		// receive timeout (client.rs:2232).
		max := smolvm.TransferMax()
		ctx, cancel := context.WithTimeout(ctx, CpTimeout)
		defer cancel()
		n, err := io.Copy(out, io.LimitReader(iox.ContextReader(ctx, in), max+1))
		if err == nil && n > max {
			err = fmt.Errorf("agent operation failed: read file: guest streamed %d bytes, exceeding the %d byte cap", n, max)
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			_ = os.Remove(dst)
		}
		return err
	}
	n, p, ok := cutMachine(dst)
	if !ok {
		return errors.New("one of SRC or DST must use machine:path syntax (e.g., myvm:/workspace/file)")
	}
	r, err := st.running(n)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if m := f.value("--mode"); m != "" {
		v, err := strconv.ParseUint(m, 8, 32)
		if err != nil {
			return fmt.Errorf("invalid octal mode '%s' (expected e.g. 644)", m)
		}
		mode = os.FileMode(v)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	root, err := os.OpenRoot(r.rootfs())
	if err != nil {
		return err
	}
	defer root.Close()
	out, err := root.OpenFile(guestPath(p), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	uid, gid := 0, 0
	if v := f.value("--uid"); v != "" {
		uid, _ = strconv.Atoi(v)
	}
	if v := f.value("--gid"); v != "" {
		gid, _ = strconv.Atoi(v)
	}
	return root.Lchown(guestPath(p), uid, gid)
}

func cutMachine(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], i > 0
		}
		if s[i] == '/' {
			return "", "", false
		}
	}
	return "", "", false
}

func guestPath(p string) string {
	p = path.Clean("/" + p)[1:]
	if p == "" {
		return "."
	}
	return p
}

// cmdCreate creates a machine from a .smolmachine artifact (--from) or a
// local root filesystem directory (--image DIR). smolvm 1.0.2+ takes the
// name as --name; a positional name is refused.
func (st *state) cmdCreate(ctx context.Context, args []string) error {
	f, err := parseFlags(args, []string{"--net"},
		[]string{"--name", "-n", "--from", "--image", "-I", "--cpus", "--mem", "-e", "--env", "-w", "--workdir", "-v", "--volume", "-p", "--port", "--label", "--storage", "--overlay"}, false)
	if err != nil {
		return err
	}
	if len(f.pos) > 0 {
		return fmt.Errorf("unexpected argument '%s' found\n\n  tip: the machine name is a flag: smolvm machine create --name %s ...", f.pos[0], f.pos[0])
	}
	name := f.value("--name", "-n")
	if name == "" {
		name = fmt.Sprintf("machine-%d", time.Now().UnixNano())
	}
	if err := validName(name); err != nil {
		return err
	}
	if r, err := st.load(name); err != nil {
		return err
	} else if r != nil {
		return fmt.Errorf("machine '%s' already exists", name)
	}
	from, image := f.value("--from"), f.value("--image", "-I")
	r := &record{Name: name, State: "created", CreatedAt: time.Now().Unix(), Cmd: f.command}
	tmp := st.machineDir(name) + ".creating"
	_ = os.RemoveAll(tmp)
	switch {
	case from != "" && image != "":
		return errors.New("the argument '--from <PATH>' cannot be used with '--image <IMAGE>'")
	case from != "":
		m, err := unpackArtifact(ctx, from, filepath.Join(tmp, "rootfs"))
		if err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
		img := m.Image
		r.Image, r.Entrypoint, r.Env, r.Workdir, r.User = &img, m.Entrypoint, m.Env, m.Workdir, m.User
		if len(r.Cmd) == 0 {
			r.Cmd = m.Cmd
		}
		if abs, err := filepath.Abs(from); err == nil {
			r.Source = abs
		}
	case image != "":
		fi, err := os.Stat(image)
		if err != nil || !fi.IsDir() {
			return fmt.Errorf("the stand-in creates machines from a local root filesystem directory or --from FILE.smolmachine, not %q", image)
		}
		if err := standin.CopyTree(ctx, image, filepath.Join(tmp, "rootfs")); err != nil {
			_ = os.RemoveAll(tmp)
			return err
		}
		ref := "local:" + image
		r.Image = &ref
	default:
		if err := os.MkdirAll(filepath.Join(tmp, "rootfs"), 0o755); err != nil {
			return err
		}
	}
	r.Env = append(r.Env, f.all("-e", "--env")...)
	if w := f.value("-w", "--workdir"); w != "" {
		r.Workdir = w
	}
	r.dir = tmp
	if err := r.save(); err != nil {
		return err
	}
	if err := os.Rename(tmp, st.machineDir(name)); err != nil {
		return err
	}
	fmt.Printf("Created machine: %s\n", name)
	return nil
}

func unpackArtifact(ctx context.Context, file, dst string) (*artifactManifest, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("create from .smolmachine: file not found: %s", file)
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 1<<20)
	m, err := readArtifactHeader(br)
	if err != nil {
		return nil, fmt.Errorf("read .smolmachine: %v", err)
	}
	// The machine's root directory is an ordinary 0755 directory, as the
	// real tool's is; rootfs.Extract would create it 0700.
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("extract .smolmachine layers: %v", err)
	}
	zr, err := zstd.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("read .smolmachine: %v", err)
	}
	defer zr.Close()
	if err := rootfs.Extract(ctx, zr, dst, rootfs.Options{Devices: true}); err != nil {
		return nil, fmt.Errorf("extract .smolmachine layers: %v", err)
	}
	return m, nil
}

func (st *state) cmdStart(args []string) error {
	f, err := parseFlags(args, []string{"--forkable"}, []string{"--name", "-n"}, false)
	if err != nil {
		return err
	}
	name := machineName(f)
	r, err := st.get(name)
	if err != nil {
		return err
	}
	if r.State == "running" {
		fmt.Printf("Machine '%s' is already running\n", name)
		return nil
	}
	// The guest has a devtmpfs: /dev/null exists in it.
	if err := os.MkdirAll(filepath.Join(r.rootfs(), "dev"), 0o755); err == nil {
		_ = unix.Mknod(filepath.Join(r.rootfs(), "dev", "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}
	pid := os.Getpid()
	r.State, r.PID = "running", &pid
	if err := r.save(); err != nil {
		return err
	}
	fmt.Printf("Started machine: %s\n", name)
	return nil
}

func (st *state) cmdStop(args []string) error {
	f, err := parseFlags(args, nil, []string{"--name", "-n"}, false)
	if err != nil {
		return err
	}
	name := machineName(f)
	r, err := st.get(name)
	if err != nil {
		return err
	}
	r.State, r.PID = "stopped", nil
	_ = os.Remove(filepath.Join(r.dir, "interactive-session"))
	if err := r.save(); err != nil {
		return err
	}
	fmt.Printf("Stopped machine: %s\n", name)
	return nil
}

func (st *state) cmdDelete(args []string) error {
	f, err := parseFlags(args, []string{"-f", "--force", "--cascade"}, []string{"--name", "-n"}, false)
	if err != nil {
		return err
	}
	name := f.value("--name", "-n")
	if name == "" {
		return errors.New("the following required arguments were not provided: --name <NAME>")
	}
	r, err := st.get(name)
	if err != nil {
		return err
	}
	// delete stops a running machine first, whatever the flags
	// (src/cli/machine.rs:3990-4006 stop_if_running: true;
	// src/cli/vm_common.rs:2316-2345), then asks for confirmation unless
	// --force: --force only skips the prompt (vm_common.rs:2349-2363).
	if r.State == "running" {
		fmt.Printf("Stopping machine '%s'...\n", name)
		r.State, r.PID = "stopped", nil
		if err := r.save(); err != nil {
			return err
		}
	}
	if !f.has("-f", "--force") && !f.has("--cascade") {
		fmt.Fprintf(os.Stderr, "Delete machine '%s'? [y/N] ", name)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Println("Cancelled")
			return nil
		}
	}
	if err := os.RemoveAll(r.dir); err != nil {
		return err
	}
	fmt.Printf("Deleted machine: %s\n", name)
	return nil
}

// CpTimeout is machine cp's receive timeout (src/agent/client.rs:2232).
const CpTimeout = 600 * time.Second

// validName is smolvm 1.9.3's validate_vm_name (src/data/mod.rs:58-104),
// applied by machine create (src/cli/vm_common.rs:586).
func validName(name string) error {
	const label = "machine name"
	switch {
	case name == "":
		return fmt.Errorf("%s cannot be empty", label)
	case len(name) > 128:
		return fmt.Errorf("%s too long: %d characters (max 128)", label, len(name))
	case !isAlnum(rune(name[0])):
		return fmt.Errorf("%s must start with a letter or digit (got: %q)", label, name)
	case strings.HasSuffix(name, "-"):
		return fmt.Errorf("%s cannot end with a hyphen (got: %q)", label, name)
	case strings.Contains(name, "--"):
		return fmt.Errorf("%s cannot contain consecutive hyphens", label)
	}
	for _, c := range name {
		if !isAlnum(c) && c != '-' && c != '_' {
			if c == '/' || c == '\\' {
				return fmt.Errorf("%s cannot contain path separators", label)
			}
			return fmt.Errorf("%s contains invalid character: '%c'", label, c)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
