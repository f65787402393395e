package docker

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestPlan(t *testing.T) {
	changes := []container.FilesystemChange{
		{Kind: container.ChangeModify, Path: "/usr/lib/deep/h"},
		{Kind: container.ChangeAdd, Path: "/a/b/c"},
		{Kind: container.ChangeDelete, Path: "/etc/base-file"},
		{Kind: container.ChangeModify, Path: "/tmp"},
		{Kind: container.ChangeAdd, Path: "/tmp/t"},
		{Kind: container.ChangeAdd, Path: "/run"},
		{Kind: container.ChangeAdd, Path: "/data/in-volume"},
		{Kind: container.ChangeAdd, Path: "/data"},
		{Kind: container.ChangeAdd, Path: "/x/../../escape"},
	}
	p := newPlan(changes, []string{"proc", "tmp", "run"}, []string{"data"})
	want := "a a/b a/b/c data etc etc/base-file run usr usr/lib usr/lib/deep usr/lib/deep/h"
	if got := strings.Join(p.paths, " "); got != want {
		t.Errorf("paths:\n got %s\nwant %s", got, want)
	}
	if !p.deleted["etc/base-file"] || len(p.deleted) != 1 {
		t.Errorf("deleted: %v", p.deleted)
	}
	if got := string(p.fileList()); !strings.HasPrefix(got, "./a\x00./a/b\x00") {
		t.Errorf("file list: %q", got)
	}
}

func TestRewrite(t *testing.T) {
	var src bytes.Buffer
	tw := tar.NewWriter(&src)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./etc/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./opt/", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./opt/d/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./opt/d/new", Mode: 0o644, Size: 3},
		{Typeflag: tar.TypeReg, Name: "./unlisted", Mode: 0o644, Size: 3},
		{Typeflag: tar.TypeSymlink, Name: "./was-dir", Linkname: "/elsewhere"},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("abc"))
		}
	}
	tw.Close()
	p := newPlan([]container.FilesystemChange{
		{Kind: container.ChangeDelete, Path: "/etc/base-file"},
		{Kind: container.ChangeDelete, Path: "/opt/d"}, // replaced by a new directory
		{Kind: container.ChangeAdd, Path: "/opt/d/new"},
		{Kind: container.ChangeDelete, Path: "/gone"},
		{Kind: container.ChangeDelete, Path: "/gone/below"},
		{Kind: container.ChangeModify, Path: "/was-dir"}, // a directory replaced by a symlink
		{Kind: container.ChangeDelete, Path: "/was-dir/child"},
	}, nil, nil)
	for _, filter := range []bool{true, false} {
		var out bytes.Buffer
		if err := p.rewrite(bytes.NewReader(src.Bytes()), &out, filter); err != nil {
			t.Fatal(err)
		}
		var names []string
		tr := tar.NewReader(&out)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, h.Name)
		}
		want := "./etc/ ./opt/ ./opt/d/ opt/d/.wh..wh..opq ./opt/d/new ./was-dir etc/.wh.base-file .wh.gone"
		if !filter {
			want = strings.Replace(want, "./opt/d/new", "./opt/d/new ./unlisted", 1)
		}
		if got := strings.Join(names, " "); got != want {
			t.Errorf("filter %v:\n got %s\nwant %s", filter, got, want)
		}
	}
}
