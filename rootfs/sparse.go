package rootfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
)

// holeBlock is the smallest run of zeros written as a hole.
const holeBlock = 4096

var zeroBlock [holeBlock]byte

// writeSparse copies r to the start of the empty file f, seeking over
// every aligned 4 KiB block of zeros instead of writing it, so a sparse
// file (a layer carries its holes as zeros) does not take its full size
// on disk. The file ends at the length of r. It returns that length.
func writeSparse(ctx context.Context, f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var off int64
	hole := false
	for i := 0; ; i++ {
		if i%1024 == 1023 {
			if err := ctx.Err(); err != nil {
				return off, err
			}
		}
		n, err := fill(r, buf)
		if n > 0 {
			chunk := buf[:n]
			for i := 0; i < len(chunk); {
				end := min(i+holeBlock, len(chunk))
				if end-i == holeBlock && bytes.Equal(chunk[i:end], zeroBlock[:]) {
					i = end
					hole = true
					continue
				}
				// A run of data blocks, written at once.
				j := end
				for j < len(chunk) {
					e := min(j+holeBlock, len(chunk))
					if e-j == holeBlock && bytes.Equal(chunk[j:e], zeroBlock[:]) {
						break
					}
					j = e
				}
				if _, werr := f.WriteAt(chunk[i:j], off+int64(i)); werr != nil {
					return off, werr
				}
				hole = false
				i = j
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return off, err
		}
	}
	if hole {
		if err := f.Truncate(off); err != nil {
			return off, err
		}
	}
	return off, nil
}

// fill reads until buf is full or r fails; unlike io.ReadFull it passes
// r's own error through (io.EOF at the end, io.ErrUnexpectedEOF from a
// truncated tar).
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
