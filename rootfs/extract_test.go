package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func layerOf(t *testing.T, hdrs ...*tar.Header) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range hdrs {
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return b.Bytes()
}

func TestExtractCannotEscape(t *testing.T) {
	outside := t.TempDir()
	cases := map[string][]*tar.Header{
		"symlink to outside": {
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: outside},
			{Name: "l/evil", Typeflag: tar.TypeReg, Size: 1},
		},
		"relative symlink up": {
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../" + outside},
			{Name: "l/evil", Typeflag: tar.TypeReg, Size: 1},
		},
		"dotdot":       {{Name: "../evil", Typeflag: tar.TypeReg, Size: 1}},
		"hardlink out": {{Name: "h", Typeflag: tar.TypeLink, Linkname: "../" + filepath.Base(outside) + "/x"}},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Extract(context.Background(), bytes.NewReader(layerOf(t, hdrs...)), dir, Options{NoChown: true}); err == nil {
				t.Fatal("escaping layer accepted")
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("extraction wrote outside its root: %v", ents)
			}
		})
	}
}

func TestExtractWhiteouts(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	base := layerOf(t,
		&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "d/a", Typeflag: tar.TypeReg, Size: 1},
		&tar.Header{Name: "d/b", Typeflag: tar.TypeReg, Size: 1},
		&tar.Header{Name: "o/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "o/old", Typeflag: tar.TypeReg, Size: 1},
	)
	diff := layerOf(t,
		&tar.Header{Name: "d/.wh.a", Typeflag: tar.TypeReg},
		&tar.Header{Name: "o/.wh..wh..opq", Typeflag: tar.TypeReg},
		&tar.Header{Name: "o/new", Typeflag: tar.TypeReg, Size: 2},
		&tar.Header{Name: "s", Typeflag: tar.TypeReg, Size: 3, Mode: 0o4755},
	)
	for _, l := range [][]byte{base, diff} {
		if err := Extract(ctx, bytes.NewReader(l), dir, Options{NoChown: true}); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]bool{"d/a": false, "d/b": true, "o/old": false, "o/new": true, "s": true} {
		_, err := os.Lstat(filepath.Join(dir, p))
		if (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "s")); fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v", fi.Mode())
	}
}
