package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bot-bottle/bb/internal/iox"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// execResult is the outcome of a short command run with runExec.
type execResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// maxExecOutput bounds what runExec keeps of each output stream.
const maxExecOutput = 64 << 10

// runExec runs a short command in the container as root and returns its
// output (each stream's first 64 KiB) and exit status.
func runExec(ctx context.Context, c Client, id, name string, cmd []string, stdin []byte) (*execResult, error) {
	es, err := startExec(ctx, c, id, name, cmd, stdin, false)
	if err != nil {
		return nil, err
	}
	defer es.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, io.LimitReader(es, maxExecOutput))
	if err == nil {
		_, err = io.Copy(io.Discard, es)
	}
	var xe *exitError
	switch {
	case errors.As(err, &xe):
		return &execResult{Stdout: out.String(), Stderr: es.stderr.String(), ExitCode: xe.code}, nil
	case err != nil:
		return nil, err
	}
	return &execResult{Stdout: out.String(), Stderr: es.stderr.String()}, nil
}

// exitError is a command that ran and exited non-zero.
type exitError struct {
	what   string
	code   int
	stderr string
}

func (e *exitError) Error() string {
	s := strings.TrimSpace(e.stderr)
	if s == "" {
		s = "<no stderr>"
	}
	return fmt.Sprintf("%s exited with status %d: %s", e.what, e.code, s)
}

// execStream is a command running in a container, its stdout read as a
// stream. Read returns the command's failure in place of io.EOF: a
// non-zero exit status (with the tail of stderr), or the container
// disappearing while the stream ran. With tarStatus, exit status 1 (GNU
// tar: a file changed while it was read) is a warning.
type execStream struct {
	c         Client
	id        string
	name      string // the container's, for messages
	cmd       string // the command's name
	tarStatus bool

	pr     *io.PipeReader
	stderr *iox.Tail
	close  func()
	closed atomic.Bool // Close was called: the end of output is ours
	done   chan struct{}

	mu       sync.Mutex
	warnings []string
}

// startExec creates and attaches an exec of cmd as root in container id
// (called name in messages); stdin, if not nil, is written to the
// command's standard input.
func startExec(ctx context.Context, c Client, id, name string, cmd []string, stdin []byte, tarStatus bool) (*execStream, error) {
	s := &execStream{c: c, id: id, name: name, cmd: cmd[0], tarStatus: tarStatus,
		stderr: iox.NewTail(8 << 10), done: make(chan struct{})}
	what := s.what()
	created, err := c.ContainerExecCreate(ctx, id, container.ExecOptions{
		User: "0", WorkingDir: "/", Cmd: cmd,
		AttachStdin: stdin != nil, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("running %s: %w", what, err)
	}
	hj, err := c.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("attaching to %s: %w", what, err)
	}
	pr, pw := io.Pipe()
	s.pr = pr
	var closeOnce sync.Once
	s.close = func() { closeOnce.Do(hj.Close) }
	stop := context.AfterFunc(ctx, s.close)
	if stdin != nil {
		go func() {
			if _, err := hj.Conn.Write(stdin); err == nil {
				_ = hj.CloseWrite()
			}
		}()
	}
	go func() {
		defer close(s.done)
		defer stop()
		_, cerr := stdcopy.StdCopy(pw, s.stderr, hj.Reader)
		s.close()
		pw.CloseWithError(s.finish(ctx, created.ID, cerr))
	}()
	return s, nil
}

func (s *execStream) what() string { return s.cmd + " in " + s.name }

// finish works out how the command ended once its output did.
func (s *execStream) finish(ctx context.Context, execID string, copyErr error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errors.New("stream closed")
	}
	ctx = context.WithoutCancel(ctx)
	var ins container.ExecInspect
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		ins, err = s.c.ContainerExecInspect(ctx, execID)
		if err != nil || !ins.Running || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	gone := func(cause error) error {
		if ci, ierr := s.c.ContainerInspect(ctx, s.id); ierr != nil || ci.State == nil || !ci.State.Running {
			return fmt.Errorf("%s was stopped or removed while %s was streaming from it (%v)", s.name, s.cmd, cause)
		}
		return fmt.Errorf("stream of %s broke: %w", s.what(), cause)
	}
	switch {
	case err != nil:
		return gone(err)
	case ins.Running:
		return gone(errors.New("the command still runs after its output ended"))
	case copyErr != nil && !errors.Is(copyErr, io.EOF):
		return gone(copyErr)
	case ins.ExitCode == 0:
		return nil
	case ins.ExitCode == 1 && s.tarStatus:
		s.mu.Lock()
		s.warnings = append(s.warnings, fmt.Sprintf("%s: some files changed while they were read (tar exit status 1): %s", s.what(), s.stderr.String()))
		s.mu.Unlock()
		return nil
	case ins.ExitCode == 137 || ins.ExitCode == 143:
		return fmt.Errorf("%s was killed (exit status %d): was %s stopped or removed meanwhile?%s", s.what(), ins.ExitCode, s.name, prefixed(" ", s.stderr.String()))
	default:
		return &exitError{what: s.what(), code: ins.ExitCode, stderr: s.stderr.String()}
	}
}

// Read implements io.Reader.
func (s *execStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// Warnings implements snapshot.Warner.
func (s *execStream) Warnings() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.warnings...)
}

// Close stops reading; the command gets a broken pipe if it still writes.
func (s *execStream) Close() error {
	s.closed.Store(true)
	s.pr.CloseWithError(errors.New("stream closed"))
	s.close()
	<-s.done
	return nil
}

// prefixed returns p+s, or "" when s is empty.
func prefixed(p, s string) string {
	if s == "" {
		return ""
	}
	return p + s
}
