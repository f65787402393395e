package tarcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"github.com/bot-bottle/bb/internal/iox"
)

// Args returns the argv of a GNU tar that writes the tree under dir to
// stdout: sparse files read by their data only (--sparse: holes are
// skipped, not read as zeros), numeric owners, all xattrs, excluded
// paths' contents left out
// (their directories stay, as mount points). With oneFS, directories on
// other filesystems (volumes, bind mounts) are not descended into.
func Args(dir string, excludes []string, oneFS bool) []string {
	args := []string{"tar", "--create", "--sparse", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--ignore-failed-read", "--warning=no-file-ignored", "--anchored"}
	if oneFS {
		args = append(args, "--one-file-system")
	}
	for _, e := range excludes {
		e = strings.Trim(e, "/")
		if e == "" {
			continue
		}
		args = append(args, "--exclude=./"+e+"/*")
	}
	return append(args, "--file=-", "--directory="+dir, ".")
}

// VersionArgs is the argv that tells GNU tar from BusyBox tar.
var VersionArgs = []string{"tar", "--version"}

// CheckVersion inspects the output of VersionArgs and explains what is
// wrong if the tar is not GNU tar.
func CheckVersion(out string) error {
	if strings.Contains(out, "GNU tar") {
		return nil
	}
	if strings.Contains(strings.ToLower(out), "busybox") {
		return errors.New("the bottle's tar is BusyBox tar, which cannot keep xattrs or numeric owners: install GNU tar in the bottle's image")
	}
	if strings.TrimSpace(out) == "" {
		return errors.New("the bottle has no tar: install GNU tar in the bottle's image")
	}
	return fmt.Errorf("the bottle's tar is not GNU tar (%q): install GNU tar in the bottle's image", firstLine(out))
}

// CheckRun judges the result (stdout and error) of VersionArgs run in a
// guest by a runtime CLI: GNU tar passes; BusyBox tar, no tar and other
// tars get an error naming the bottle and the fix.
func CheckRun(name string, out []byte, err error) error {
	text := string(out)
	if err != nil {
		var xe *exec.ExitError
		msg := strings.ToLower(err.Error())
		switch {
		case !errors.As(err, &xe):
			return err
		case strings.Contains(msg, "busybox"):
			text = "BusyBox"
		case xe.ExitCode() == 127 || strings.Contains(msg, "not found") || strings.Contains(msg, "no such file"):
			text = ""
		default:
			return fmt.Errorf("running tar --version in %s: %w", name, err)
		}
	}
	if err := CheckVersion(text); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// StatusMarker starts the line a Wrap-ped guest command writes to stderr
// with tar's own exit status.
const StatusMarker = "bb-tar-exit="

// Wrap returns an argv that runs argv (a tar) through /bin/sh in the
// guest and reports its exit status on stderr as StatusMarker<N>. A
// runtime CLI that fails exits 1 itself (smolvm, Apple's container),
// the same status as GNU tar's "file changed as we read it" warning: the
// marker tells the two apart.
func Wrap(argv []string) []string {
	return append([]string{"/bin/sh", "-c", `"$@"; s=$?; echo "` + StatusMarker + `$s" >&2; exit $s`, "sh"}, argv...)
}

// TarStatus finds the status a Wrap-ped command reported in stderr and
// returns stderr without the marker line.
func TarStatus(stderr string) (status int, found bool, rest string) {
	i := strings.LastIndex(stderr, StatusMarker)
	if i < 0 || (i > 0 && stderr[i-1] != '\n') {
		return 0, false, stderr
	}
	line, after, _ := strings.Cut(stderr[i+len(StatusMarker):], "\n")
	n, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, false, stderr
	}
	return n, true, stderr[:i] + after
}

// Judge decides what the exit of a Wrap-ped command means: err is the
// CLI's own result, stderr its stderr. warning is set for tar's exit
// status 1; a CLI failure is never read as tar's.
func Judge(what string, err error, stderr string) (warning string, failure error) {
	status, found, rest := TarStatus(stderr)
	code := 0
	var xe *exec.ExitError
	if err != nil {
		if !errors.As(err, &xe) {
			return "", ExitError(what, err, rest)
		}
		code = xe.ExitCode()
	}
	switch {
	case !found && err == nil:
		return "", ExitError(what, errors.New("the guest command ended without reporting tar's exit status (output may be incomplete)"), rest)
	case !found:
		return "", ExitError(what, fmt.Errorf("the runtime CLI failed (%w) before tar reported its status", err), rest)
	case code != status:
		return "", ExitError(what, fmt.Errorf("the runtime CLI exited %d after tar exited %d (output may be incomplete)", code, status), rest)
	case status == 0:
		return "", nil
	case status == 1:
		return fmt.Sprintf("%s: some files changed while they were read (tar exit status 1): %s", what, strings.TrimSpace(rest)), nil
	default:
		return "", ExitError(what, fmt.Errorf("tar exit status %d", status), rest)
	}
}

// Stream is a running process whose stdout is a tar stream.
type Stream struct {
	cmd      *exec.Cmd
	out      io.ReadCloser
	stderr   *iox.Tail
	what     string
	once     sync.Once
	waitErr  error
	warnings []string
	// TarStatus makes exit status 1 a warning (GNU tar: a file changed
	// while it was read), as it is for tar run directly or through exec.
	tarStatus bool
	// wrapped: the command is Wrap-ped; its stderr reports tar's status.
	wrapped bool
}

// ReadAhead makes the stream drain the process's stdout into up to n
// bytes of memory ahead of the reader, so that a CLI that stops relaying
// output a few seconds after the process exits (Apple's container: 3 s)
// is not held up by a reader that pauses (a slow disk under the store).
func (s *Stream) ReadAhead(n int) {
	const chunk = 256 << 10
	ch := make(chan []byte, max(1, n/chunk))
	errc := make(chan error, 1)
	src := s.out
	go func() {
		for {
			b := make([]byte, chunk)
			k, err := io.ReadFull(src, b)
			if k > 0 {
				ch <- b[:k]
			}
			if err != nil {
				if errors.Is(err, io.ErrUnexpectedEOF) {
					err = io.EOF
				}
				errc <- err
				close(ch)
				return
			}
		}
	}()
	s.out = &aheadReader{ch: ch, errc: errc, src: src}
}

type aheadReader struct {
	ch   chan []byte
	errc chan error
	src  io.ReadCloser
	cur  []byte
	err  error
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for len(a.cur) == 0 {
		if a.err != nil {
			return 0, a.err
		}
		b, ok := <-a.ch
		if !ok {
			a.err = <-a.errc
			continue
		}
		a.cur = b
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close closes the process's stdout and lets the reading goroutine end.
func (a *aheadReader) Close() error {
	err := a.src.Close()
	go func() {
		for range a.ch {
		}
	}()
	return err
}

// StartWrapped is Start for a command whose argv ends in Wrap(tar argv):
// tar's status comes from its marker, and the CLI's own failures stay
// failures (see Judge).
func StartWrapped(ctx context.Context, cmd *exec.Cmd, what string) (*Stream, error) {
	s, err := Start(ctx, cmd, what, true)
	if err != nil {
		return nil, err
	}
	s.wrapped = true
	return s, nil
}

// Start runs cmd and returns its stdout as a stream. what names the
// process in errors ("docker exec tar in bot-bottle-x"). With tarStatus,
// exit status 1 is a warning, not a failure.
func Start(ctx context.Context, cmd *exec.Cmd, what string, tarStatus bool) (*Stream, error) {
	s := &Stream{cmd: cmd, stderr: iox.NewTail(8 << 10), what: what, tarStatus: tarStatus}
	cmd.Stderr = s.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w (is it installed and on PATH?)", what, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.out = out
	return s, nil
}

// Read implements io.Reader. At the end of stdout it waits for the
// process and returns its failure, if any, instead of io.EOF.
func (s *Stream) Read(p []byte) (int, error) {
	n, err := s.out.Read(p)
	if errors.Is(err, io.EOF) {
		if werr := s.wait(); werr != nil {
			return n, werr
		}
	}
	return n, err
}

func (s *Stream) wait() error {
	s.once.Do(func() {
		err := s.cmd.Wait()
		if s.wrapped {
			w, ferr := Judge(s.what, err, s.stderr.String())
			if w != "" {
				s.warnings = append(s.warnings, w)
			}
			s.waitErr = ferr
			return
		}
		var xe *exec.ExitError
		switch {
		case err == nil:
		case errors.As(err, &xe) && s.tarStatus && xe.ExitCode() == 1:
			s.warnings = append(s.warnings, fmt.Sprintf("%s: some files changed while they were read (tar exit status 1): %s", s.what, s.stderr.String()))
		default:
			s.waitErr = ExitError(s.what, err, s.stderr.String())
		}
	})
	return s.waitErr
}

// Warnings implements snapshot.Warner.
func (s *Stream) Warnings() []string { return s.warnings }

// Close stops the process if it still runs and reaps it.
func (s *Stream) Close() error {
	if s.cmd.ProcessState == nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
	}
	_ = s.out.Close()
	_ = s.wait()
	return nil
}

// ExitError formats a failed command with the tail of its stderr.
func ExitError(what string, err error, stderr string) error {
	stderr = strings.TrimSpace(stderr)
	if stderr == "" {
		stderr = "<no stderr>"
	}
	return fmt.Errorf("%s failed: %w: %s", what, err, stderr)
}

// Run runs a short command and returns its stdout, or an error carrying
// its stderr.
func Run(ctx context.Context, cmd *exec.Cmd, what string) ([]byte, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: %w (is it installed and on PATH?)", what, err)
		}
		return out.Bytes(), ExitError(what, err, errb.String())
	}
	return out.Bytes(), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
