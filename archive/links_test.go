package archive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/bottle"
)

// Links in docker archives (podman save, skopeo docker-archive:) resolve
// to regular files of the archive; any other link is refused.
func TestImportRefusesBadLinks(t *testing.T) {
	f := newFixture(t)
	ents := entries(t, f.raw)
	sym := func(name, target string) tarEntry {
		return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target}}
	}
	cases := []struct {
		name string
		add  []tarEntry
		want string
	}{
		{"link to a missing file", []tarEntry{sym("x/layer.tar", "../nothing.tar")}, "not a regular file"},
		{"link out of the archive", []tarEntry{sym("x/layer.tar", "../../etc/passwd")}, "outside the archive"},
		{"absolute link", []tarEntry{sym("x/layer.tar", "/etc/passwd")}, "symbolic link"},
		{"link named like a blob", []tarEntry{sym("blobs/sha256/"+strings.Repeat("a", 64), "../../index.json")}, "symbolic link"},
		{"link as index.json", []tarEntry{sym("index.json", "manifest.json")}, "symbolic link"},
		{"entry through a link", []tarEntry{sym("d", blobName(f.layer)), reg("d/x", []byte("x"))}, "goes through"},
		{"link to a link", []tarEntry{sym("a.tar", blobName(f.layer)), sym("b.tar", "a.tar")}, "not a regular file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newEnv(t)
			before := h.state(t)
			all := append(slices.Clone(ents), tc.add...)
			if tc.name == "link as index.json" {
				all = append(without(ents, "index.json"), tc.add...)
			}
			_, err := h.m.Import(context.Background(), bytes.NewReader(build(t, all)), bottle.ImportOptions{})
			if err == nil || !errors.Is(err, archive.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrInvalid saying %q", err, tc.want)
			}
			h.unchanged(t, before)
		})
	}
}
