package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

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
	name      string
	what      string
	cmd       string
	tarStatus bool

	pr     *io.PipeReader
	stderr *tailBuffer
	close  func()
	done   chan struct{}

	mu       sync.Mutex
	warnings []string
}

// startExec creates and attaches an exec of cmd as root in container id
// (called name in messages); stdin, if not nil, is written to the
// command's standard input.
func startExec(ctx context.Context, c Client, id, name string, cmd []string, stdin []byte, tarStatus bool) (*execStream, error) {
	what := fmt.Sprintf("%s in %s", cmd[0], name)
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
	s := &execStream{c: c, id: id, name: name, what: what, cmd: cmd[0], tarStatus: tarStatus, pr: pr,
		stderr: &tailBuffer{max: 8 << 10}, done: make(chan struct{})}
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
		pw.CloseWithError(s.finish(context.WithoutCancel(ctx), created.ID, cerr, ctx))
	}()
	return s, nil
}

// finish works out how the command ended once its output did.
func (s *execStream) finish(ctx context.Context, execID string, copyErr error, runCtx context.Context) error {
	if err := runCtx.Err(); err != nil {
		return err
	}
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
		return fmt.Errorf("stream of %s broke: %w", s.what, cause)
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
		s.warnings = append(s.warnings, fmt.Sprintf("%s: some files changed while they were read (tar exit status 1): %s", s.what, s.stderr.String()))
		s.mu.Unlock()
		return nil
	case ins.ExitCode == 137 || ins.ExitCode == 143:
		return fmt.Errorf("%s was killed (exit status %d): was %s stopped or removed meanwhile? %s", s.what, ins.ExitCode, s.name, s.stderr.String())
	default:
		return &exitError{what: s.what, code: ins.ExitCode, stderr: s.stderr.String()}
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
	s.pr.CloseWithError(errors.New("stream closed"))
	s.close()
	<-s.done
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
