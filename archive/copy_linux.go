package archive

import (
	"context"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// zeroCopyChunk is how much one system call moves: small enough to
// report progress and notice cancellation often.
const zeroCopyChunk = 8 << 20

// zeroCopy copies n bytes from src to dst inside the kernel, from both
// files' current offsets: copy_file_range between files, else sendfile
// (to a pipe, a device or a file on another filesystem). handled is false
// when neither works for these files; nothing was copied then.
func zeroCopy(ctx context.Context, dst, src *os.File, n int64, add func(int64)) (written int64, handled bool, err error) {
	drc, err := dst.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	src0, err := src.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	sfd := -1
	if err := src0.Control(func(fd uintptr) { sfd = int(fd) }); err != nil || sfd < 0 {
		return 0, false, nil
	}
	growPipe(drc)
	useRange := true
	for written < n {
		if err := ctx.Err(); err != nil {
			return written, true, err
		}
		chunk := int(min(n-written, zeroCopyChunk))
		var m int
		var serr error
		werr := drc.Write(func(fd uintptr) bool {
			if useRange {
				m, serr = unix.CopyFileRange(sfd, nil, int(fd), nil, chunk, 0)
			} else {
				m, serr = unix.Sendfile(int(fd), sfd, nil, chunk)
			}
			return serr != unix.EAGAIN
		})
		if serr == nil {
			serr = werr
		}
		switch {
		case serr == unix.EINTR:
			continue
		case serr != nil && written == 0 && useRange:
			useRange = false // not two files on one filesystem: try sendfile
			continue
		case serr != nil && written == 0:
			return 0, false, nil
		case serr != nil:
			return written, true, serr
		case m == 0:
			return written, true, nil // src ended early
		}
		written += int64(m)
		add(int64(m))
	}
	return written, true, nil
}

// pipeSize is the pipe buffer zeroCopy asks for when it writes to a pipe:
// with the default 64 KiB, sendfile stops every 64 KiB for the reader.
const pipeSize = 1 << 20

// growPipe enlarges dst's buffer if it is a pipe (best effort: the
// system's pipe-max-size may refuse).
func growPipe(dst syscall.RawConn) {
	_ = dst.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO {
			if n, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0); err == nil && n < pipeSize {
				_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize)
			}
		}
	})
}
