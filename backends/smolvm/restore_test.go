package smolvm

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"testing"
)

func TestWriteRestore(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	x := map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.user.a": "b"}
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755},
		{Typeflag: tar.TypeDir, Name: "./private/", Mode: 0o700},
		{Typeflag: tar.TypeReg, Name: "./private/f", Mode: 0o644, Size: 1},
		{Typeflag: tar.TypeDir, Name: "./empty/", Mode: 0o700},
		{Typeflag: tar.TypeDir, Name: "./plain/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "./plain/cap", Mode: 0o755, Size: 3, PAXRecords: x},
		{Typeflag: tar.TypeLink, Name: "./plain/cap2", Linkname: "./plain/cap"},
		{Typeflag: tar.TypeReg, Name: "./plain/nox", Mode: 0o644, Size: 2},
		{Typeflag: tar.TypeLink, Name: "./plain/nox2", Linkname: "plain/nox"},
		{Typeflag: tar.TypeDir, Name: "./sticky/", Mode: 0o1777},
		{Typeflag: tar.TypeSymlink, Name: "./sticky/l", Linkname: "x"},
		{Typeflag: tar.TypeDir, Name: "./xdir/", Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.user.d": "1"}},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
	}
	tw.Close()
	var out bytes.Buffer
	st, err := WriteRestore(context.Background(), &in, &out)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == "plain/cap" && (h.PAXRecords["SCHILY.xattr.security.capability"] == "" || h.Size != 3) {
			t.Errorf("cap entry: %+v", h)
		}
	}
	want := []string{"plain/cap", "plain/cap2", "private/", "sticky/", "xdir/"}
	if len(got) != len(want) {
		t.Fatalf("restore tar holds %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("restore tar holds %q, want %q", got, want)
		}
	}
	if st.Dirs != 3 || st.Entries != 2 || st.Bytes != 3 {
		t.Errorf("stats %+v", st)
	}
}
