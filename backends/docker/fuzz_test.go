package docker

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"path"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/oci/layer"
	"github.com/bot-bottle/bb/rootfs"
	"github.com/docker/docker/api/types/container"
)

// parseChanges reads a change list, one "A|C|D path" per line, as the
// daemon's ContainerChanges would report it.
func parseChanges(s string) []container.FilesystemChange {
	var out []container.FilesystemChange
	for _, line := range strings.Split(s, "\n") {
		if len(line) < 2 {
			continue
		}
		k := container.ChangeModify
		switch line[0] {
		case 'A':
			k = container.ChangeAdd
		case 'D':
			k = container.ChangeDelete
		}
		out = append(out, container.FilesystemChange{Kind: k, Path: line[2:]})
	}
	return out
}

func seedTar(ents ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range ents {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.Bytes()
}

// FuzzDockerDiff feeds arbitrary change lists and tar streams (both come
// from the bottle) to the incremental snapshot's plan and rewrite: they
// must never panic, and what rewrite emits must be a tar whose every
// path is relative and clean of "..", within the plan when filtering,
// with whiteouts only for deleted paths and never below a
// non-directory of the stream.
func FuzzDockerDiff(f *testing.F) {
	f.Add("A /a/b/c\nD /etc/base-file\nC /tmp\nD /opt/d\nA /opt/d/new\nC /was-dir\nD /was-dir/child\n",
		seedTar(
			&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
			&tar.Header{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755},
			&tar.Header{Typeflag: tar.TypeDir, Name: "./opt/d/", Mode: 0o755},
			&tar.Header{Typeflag: tar.TypeReg, Name: "./opt/d/new", Mode: 0o644, Size: 3},
			&tar.Header{Typeflag: tar.TypeSymlink, Name: "./was-dir", Linkname: "/elsewhere"},
		), true)
	f.Add("A /x/../../escape\nD /../etc/passwd\nA /a\n", seedTar(
		&tar.Header{Typeflag: tar.TypeReg, Name: "../../escape", Mode: 0o644, Size: 1},
		&tar.Header{Typeflag: tar.TypeReg, Name: "/etc/passwd", Mode: 0o644, Size: 1},
		&tar.Header{Typeflag: tar.TypeReg, Name: "a/../../a", Mode: 0o644, Size: 1},
		&tar.Header{Typeflag: tar.TypeSymlink, Name: "a", Linkname: "/"},
		&tar.Header{Typeflag: tar.TypeReg, Name: "a/b", Mode: 0o644, Size: 1},
	), false)
	f.Add("D /\nD .\nD /a/.wh..wh..opq\nA /a\n", seedTar(&tar.Header{Typeflag: tar.TypeDir, Name: "a/", Mode: 0o755}), true)
	f.Add("", []byte("not a tar"), true)

	f.Fuzz(func(t *testing.T, changes string, stream []byte, filter bool) {
		p := newPlan(parseChanges(changes), []string{"proc", "tmp"}, []string{"data"})
		for i, n := range p.paths {
			if n == "" || n == "." || path.IsAbs(n) || rootfs.HasDotDot(n) || path.Clean(n) != n {
				t.Fatalf("plan path %q is not clean and relative", n)
			}
			if i > 0 && p.paths[i-1] >= n {
				t.Fatalf("plan paths not sorted: %q then %q", p.paths[i-1], n)
			}
			if d := path.Dir(n); d != "." && !p.set[d] {
				t.Fatalf("plan has %q but not its parent %q", n, d)
			}
			if below(n, map[string]bool{"proc": true, "tmp": true, "data": true}) {
				t.Fatalf("plan path %q is below an excluded path or mount", n)
			}
		}
		for n := range p.deleted {
			if !p.set[n] {
				t.Fatalf("deleted %q is not in the plan", n)
			}
		}
		// A sparse entry may claim any size and read as zeros: bound
		// the output, which is the layer's job elsewhere.
		var out bytes.Buffer
		if err := p.rewrite(bytes.NewReader(stream), &capped{w: &out, left: 8 << 20}, filter); err != nil {
			return // a damaged stream is refused
		}
		tr := tar.NewReader(&out)
		seenWh := map[string]bool{}
		nondir := map[string]bool{}
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("rewrite emitted a damaged tar: %v", err)
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				t.Fatalf("rewrite emitted a damaged tar: %v", err)
			}
			if path.IsAbs(h.Name) || rootfs.HasDotDot(h.Name) {
				t.Fatalf("rewrite emitted %q", h.Name)
			}
			name := cleanRel(h.Name)
			base := path.Base(name)
			if strings.HasPrefix(base, layer.WhiteoutPrefix) && h.Size == 0 && h.Typeflag == tar.TypeReg && h.ModTime.Unix() == 0 {
				if seenWh[name] {
					t.Fatalf("whiteout %q emitted twice", name)
				}
				seenWh[name] = true
				dir := path.Dir(name)
				if nondir[dir] || below(name, nondir) {
					t.Fatalf("whiteout %q below a non-directory of the stream", name)
				}
				target := path.Join(dir, strings.TrimPrefix(base, layer.WhiteoutPrefix))
				if base == layer.OpaqueWhiteout {
					target = dir
				}
				if !p.deleted[target] && !(filter && p.set[name]) && filter {
					t.Fatalf("whiteout %q for %q, which the change list does not delete", name, target)
				}
				continue
			}
			if filter && !p.set[name] {
				t.Fatalf("rewrite emitted %q, which is not in the plan", name)
			}
			if h.Typeflag != tar.TypeDir {
				nondir[name] = true
			}
		}
	})
}

// capped fails writes past left bytes.
type capped struct {
	w    io.Writer
	left int
}

var errCapped = errors.New("output too large")

func (c *capped) Write(p []byte) (int, error) {
	if len(p) > c.left {
		return 0, errCapped
	}
	c.left -= len(p)
	return c.w.Write(p)
}
