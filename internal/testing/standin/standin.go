package standin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// EnvRoot names the directory a stand-in keeps its state in.
const EnvRoot = "BB_STANDIN_ROOT"

// DefaultPath is the PATH a command gets when its bottle's config has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Root returns the state directory of the stand-in called name
// ($BB_STANDIN_ROOT/name), creating it.
func Root(name string) (string, error) {
	r := os.Getenv(EnvRoot)
	if r == "" {
		return "", fmt.Errorf("%s is not set: the stand-in keeps its containers and images there", EnvRoot)
	}
	dir := filepath.Join(r, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return dir, nil
}

// ExecSpec is a command to run inside a root filesystem directory.
type ExecSpec struct {
	Root string
	Argv []string
	// Env is the guest environment ("K=V"); PATH in it is searched for
	// Argv[0] inside Root.
	Env []string
	// Dir is the working directory inside Root ("/" when empty).
	Dir string
	// User is "", "root", a name from Root's /etc/passwd, "uid" or
	// "uid:gid".
	User   string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// Exec runs spec chrooted into spec.Root and returns the command's exit
// status (127 when the command does not exist in the root). It needs
// root privileges.
func Exec(ctx context.Context, spec ExecSpec) (int, error) {
	if len(spec.Argv) == 0 {
		return 0, errors.New("no command given")
	}
	uid, gid, err := LookupUser(spec.Root, spec.User)
	if err != nil {
		return 126, err
	}
	env := spec.Env
	if lookupEnv(env, "PATH") == "" {
		env = append(append([]string{}, env...), "PATH="+DefaultPath)
	}
	prog, ok := findInRoot(spec.Root, spec.Argv[0], lookupEnv(env, "PATH"))
	if !ok {
		if spec.Stderr != nil {
			fmt.Fprintf(spec.Stderr, "exec: %q: executable file not found in $PATH\n", spec.Argv[0])
		}
		return 127, nil
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	if fi, err := os.Stat(filepath.Join(spec.Root, dir)); err != nil || !fi.IsDir() {
		dir = "/"
	}
	cmd := &exec.Cmd{
		Path:   prog,
		Args:   spec.Argv,
		Env:    env,
		Dir:    dir,
		Stdin:  spec.Stdin,
		Stdout: spec.Stdout,
		Stderr: spec.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			Chroot:     spec.Root,
			Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
			Setpgid:    true,
		},
	}
	if err := cmd.Start(); err != nil {
		return 126, fmt.Errorf("starting %s in %s: %w", spec.Argv[0], spec.Root, err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		case <-done:
		}
	}()
	err = cmd.Wait()
	close(done)
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, ok := xe.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return xe.ExitCode(), nil
	}
	if err != nil {
		return 1, err
	}
	return 0, nil
}

func lookupEnv(env []string, key string) string {
	v := ""
	for _, e := range env {
		if k, val, ok := strings.Cut(e, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// findInRoot resolves a command name the way a shell inside root would.
func findInRoot(root, name, pathList string) (string, bool) {
	if strings.Contains(name, "/") {
		p := path.Clean("/" + name)
		_, err := os.Lstat(filepath.Join(root, p))
		return p, err == nil
	}
	for _, d := range strings.Split(pathList, ":") {
		if d == "" || !strings.HasPrefix(d, "/") {
			continue
		}
		p := path.Join(d, name)
		if fi, err := os.Stat(filepath.Join(root, resolveInRoot(root, p))); err == nil && !fi.IsDir() {
			return p, true
		}
	}
	return "", false
}

// resolveInRoot follows symlinks of p as if root were "/" (a few levels).
func resolveInRoot(root, p string) string {
	for i := 0; i < 16; i++ {
		target, err := os.Readlink(filepath.Join(root, p))
		if err != nil {
			return p
		}
		if strings.HasPrefix(target, "/") {
			p = path.Clean(target)
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return p
}

// LookupUser resolves a user spec against root's /etc/passwd.
func LookupUser(root, spec string) (uid, gid uint32, err error) {
	if spec == "" || spec == "root" || spec == "0" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	if n, err := strconv.ParseUint(user, 10, 32); err == nil {
		uid, gid = uint32(n), uint32(n)
		if pw, ok := passwdByUID(root, uid); ok {
			gid = pw.gid
		}
	} else {
		pw, ok := passwdByName(root, user)
		if !ok {
			return 0, 0, fmt.Errorf("unable to find user %s: no matching entries in passwd file", user)
		}
		uid, gid = pw.uid, pw.gid
	}
	if hasGroup {
		n, err := strconv.ParseUint(group, 10, 32)
		if err != nil {
			return 0, 0, fmt.Errorf("group %q: only numeric groups are supported", group)
		}
		gid = uint32(n)
	}
	return uid, gid, nil
}

type passwdEntry struct {
	name     string
	uid, gid uint32
}

func passwd(root string) []passwdEntry {
	f, err := os.Open(filepath.Join(root, "etc/passwd"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []passwdEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ":")
		if len(fs) < 4 {
			continue
		}
		u, err1 := strconv.ParseUint(fs[2], 10, 32)
		g, err2 := strconv.ParseUint(fs[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, passwdEntry{fs[0], uint32(u), uint32(g)})
	}
	return out
}

func passwdByName(root, name string) (passwdEntry, bool) {
	for _, e := range passwd(root) {
		if e.name == name {
			return e, true
		}
	}
	return passwdEntry{}, false
}

func passwdByUID(root string, uid uint32) (passwdEntry, bool) {
	for _, e := range passwd(root) {
		if e.uid == uid {
			return e, true
		}
	}
	return passwdEntry{}, false
}

// WriteJSON writes v to path atomically.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadJSON reads path into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// CopyTree copies the directory src to dst (which must not exist) with
// owners, modes, hard links and xattrs.
func CopyTree(ctx context.Context, src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, "cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("cp -a %s %s: %w: %s", src, dst, err, out)
	}
	return nil
}

// Build compiles the stand-in executables (container and smolvm) into dir.
func Build(ctx context.Context, dir string) error {
	for _, name := range []string{"container", "smolvm"} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, name), "github.com/bot-bottle/bb/internal/testing/standin/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building the %s stand-in: %w: %s", name, err, out)
		}
	}
	return nil
}
