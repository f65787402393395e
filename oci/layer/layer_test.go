package layer_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
)

func TestWriteRemembersTarSize(t *testing.T) {
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := bytes.Repeat([]byte("bb layer "), 100000)
	l, err := layer.Write(context.Background(), s, bytes.NewReader(in), layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	if n, ok := layer.TarSize(d); !ok || n != int64(len(in)) {
		t.Errorf("TarSize = %d, %v; want %d", n, ok, len(in))
	}
	diff, _ := l.DiffID()
	if _, ok := layer.TarSize(diff); ok {
		t.Errorf("TarSize knows a digest it never wrote")
	}
}
