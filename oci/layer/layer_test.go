package layer_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/oci/layer"
)

func TestWriteRecordsLayer(t *testing.T) {
	ctx := context.Background()
	s, err := oci.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	in := bytes.Repeat([]byte("bb layer "), 100000)
	l, err := layer.Write(ctx, s, bytes.NewReader(in), layer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := l.Digest()
	diff, _ := l.DiffID()
	got, err := s.LayerByDiffID(ctx, diff)
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != d || got.TarSize != int64(len(in)) || got.MediaType != l.Descriptor().MediaType {
		t.Errorf("LayerByDiffID = %+v; want blob %s of a %d-byte tar", got, d, len(in))
	}
	if n, ok := s.TarSize(diff, d); !ok || n != int64(len(in)) {
		t.Errorf("TarSize = %d, %v; want %d", n, ok, len(in))
	}
	if _, err := s.LayerByDiffID(ctx, d); !errors.Is(err, oci.ErrNotFound) {
		t.Errorf("LayerByDiffID(blob digest) = %v; want ErrNotFound", err)
	}
}
