package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/bot-bottle/bb/snapshot"
	"github.com/docker/docker/api/types/container"
)

// plan is what an incremental snapshot streams: the paths the daemon's
// change list names, their parent directories, and the deleted paths.
type plan struct {
	// paths are relative, clean and sorted, so a directory comes before
	// its contents.
	paths []string
	set   map[string]bool
	// deleted are paths the change list says were deleted. One that still
	// exists when streamed is a directory that replaced a deleted one
	// (overlayfs's opaque directory): it gets an opaque whiteout.
	deleted map[string]bool
	// mark is the snapshot's whiteout mark (snapshot.StreamRequest): the
	// whiteouts rewrite makes carry it, so the commit filter tells them
	// from the bottle's files named like whiteouts (which it leaves out).
	mark string
}

// newPlan turns the daemon's change list into a plan. Paths below
// excludes or mounts are left out, and so are excluded paths that only
// changed (/tmp's mtime); excluded paths the bottle added keep their
// directory entry, as in a full snapshot.
func newPlan(changes []container.FilesystemChange, excludes, mounts []string) *plan {
	ex := cleanSet(excludes)
	mt := cleanSet(mounts)
	p := &plan{set: map[string]bool{}, deleted: map[string]bool{}}
	for _, ch := range changes {
		name := cleanRel(ch.Path)
		if name == "" || rootfs.HasDotDot(ch.Path) || below(name, ex) || below(name, mt) {
			continue
		}
		if ex[name] && ch.Kind != container.ChangeAdd {
			continue
		}
		if ch.Kind == container.ChangeDelete {
			p.deleted[name] = true
		}
		for d := name; d != "." && !p.set[d]; d = path.Dir(d) {
			p.set[d] = true
		}
	}
	for n := range p.set {
		p.paths = append(p.paths, n)
	}
	sort.Strings(p.paths)
	return p
}

// fileList is the plan's paths for tar --null --files-from=-.
func (p *plan) fileList() []byte {
	var b bytes.Buffer
	for _, n := range p.paths {
		b.WriteString("./")
		b.WriteString(n)
		b.WriteByte(0)
	}
	return b.Bytes()
}

// diffTarArgs is the argv of the guest GNU tar of an incremental
// snapshot: the plan's paths, read NUL-separated from stdin, without
// descending into directories. Paths that are gone are skipped quietly:
// the plan names deleted paths on purpose, to find recreated directories.
func diffTarArgs() []string {
	return []string{"tar", "--create", "--sparse", "--numeric-owner", "--xattrs", "--xattrs-include=*",
		"--ignore-failed-read", "--warning=no-file-ignored", "--warning=no-failed-read", "--no-recursion",
		"--file=-", "--directory=/", "--null", "--files-from=-"}
}

// rewrite copies the tar stream src to w, keeping only the plan's paths
// when filter is set, and adds the whiteouts: an opaque whiteout right
// after each deleted-then-recreated directory, and a whiteout for each
// deleted path at the end (none below another whiteout or below a
// non-directory of the stream, such as a symlink that replaced a
// directory). It reads src to
// its end, so that a producer's failure reported there is returned.
func (p *plan) rewrite(src io.Reader, w io.Writer, filter bool) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	tw := tar.NewWriter(bw)
	tr := tar.NewReader(bufio.NewReaderSize(src, 256<<10))
	present := map[string]bool{}
	// Non-directories of the stream: a deleted path below one needs no
	// whiteout (the entry hides the lower directory whole), and a whiteout
	// there would sit below a symlink.
	nondir := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := cleanRel(hdr.Name)
		// The stream comes from the bottle: an entry that climbs out
		// (..) or is absolute is not one tar --directory=/ makes.
		if name == "" || rootfs.HasDotDot(hdr.Name) || path.IsAbs(hdr.Name) || (filter && !p.set[name]) {
			continue
		}
		hdr.Format = tar.FormatUnknown
		delete(hdr.PAXRecords, snapshot.WhiteoutMarkRecord) // only ours carry it
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size > 0 {
			if _, err := io.Copy(tw, tr); err != nil {
				return err
			}
		}
		if hdr.Typeflag != tar.TypeDir {
			nondir[name] = true
		}
		if p.deleted[name] {
			present[name] = true
			if hdr.Typeflag == tar.TypeDir {
				if err := p.writeWhiteout(tw, path.Join(name, layer.OpaqueWhiteout)); err != nil {
					return err
				}
			}
		}
	}
	var gone []string
	for n := range p.deleted {
		if !present[n] {
			gone = append(gone, n)
		}
	}
	sort.Strings(gone)
	whited := map[string]bool{}
	for _, n := range gone {
		if below(n, whited) || below(n, nondir) {
			continue
		}
		whited[n] = true
		if err := p.writeWhiteout(tw, layer.WhiteoutName(n)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := io.Copy(io.Discard, src)
	return err
}

// writeWhiteout writes a whiteout, marked as the snapshot's own.
func (p *plan) writeWhiteout(tw *tar.Writer, name string) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: time.Unix(0, 0)}
	if p.mark != "" {
		h.PAXRecords = map[string]string{snapshot.WhiteoutMarkRecord: p.mark}
	}
	return tw.WriteHeader(h)
}

// rewriteStream runs plan.rewrite in a goroutine and is its output.
type rewriteStream struct {
	src  io.ReadCloser
	pr   *io.PipeReader
	done chan struct{}
}

func newRewriteStream(src io.ReadCloser, p *plan, filter bool) *rewriteStream {
	pr, pw := io.Pipe()
	s := &rewriteStream{src: src, pr: pr, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		pw.CloseWithError(p.rewrite(src, pw, filter))
	}()
	return s
}

func (s *rewriteStream) Read(b []byte) (int, error) { return s.pr.Read(b) }

// Warnings implements snapshot.Warner by asking the source stream.
func (s *rewriteStream) Warnings() []string {
	if w, ok := s.src.(interface{ Warnings() []string }); ok {
		return w.Warnings()
	}
	return nil
}

func (s *rewriteStream) Close() error {
	s.pr.CloseWithError(errors.New("stream closed"))
	err := s.src.Close()
	<-s.done
	return err
}

// cleanRel makes a path relative and clean: "/a/b/", "./a/b" -> "a/b";
// the root gives "".
func cleanRel(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

func cleanSet(paths []string) map[string]bool {
	m := map[string]bool{}
	for _, p := range paths {
		if c := cleanRel(p); c != "" {
			m[c] = true
		}
	}
	return m
}

// below reports whether name is strictly below one of set.
func below(name string, set map[string]bool) bool {
	for d := path.Dir(name); d != "."; d = path.Dir(d) {
		if set[d] {
			return true
		}
	}
	return false
}
