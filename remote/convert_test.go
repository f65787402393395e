package remote

import (
	"reflect"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestDescriptorRoundTrip(t *testing.T) {
	h := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	for name, d := range map[string]v1.Descriptor{
		"minimal": {MediaType: types.OCIManifestSchema1, Digest: h, Size: 42},
		"full": {
			MediaType:    types.OCILayer,
			Digest:       h,
			Size:         7,
			URLs:         []string{"https://example.com/blob"},
			Annotations:  map[string]string{"org.opencontainers.image.title": "x"},
			Data:         []byte("payload"),
			Platform:     &v1.Platform{Architecture: "arm64", OS: "linux", OSVersion: "1", OSFeatures: []string{"f"}, Variant: "v8"},
			ArtifactType: "application/vnd.example",
		},
	} {
		t.Run(name, func(t *testing.T) {
			o := toOCI(d)
			if o.Digest.String() != d.Digest.String() || len(o.URLs) != len(d.URLs) || string(o.Data) != string(d.Data) ||
				(d.Platform == nil) != (o.Platform == nil) {
				t.Fatalf("toOCI(%+v) = %+v", d, o)
			}
			back, err := fromOCI(o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, d) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", back, d)
			}
			// And the other way: image-spec → v1 → image-spec.
			again := toOCI(back)
			if !reflect.DeepEqual(again, o) {
				t.Fatalf("image-spec round trip:\n got %+v\nwant %+v", again, o)
			}
		})
	}
	if _, err := fromOCI(ocispec.Descriptor{Digest: "not-a-digest"}); err == nil {
		t.Fatal("fromOCI accepted a malformed digest")
	}
}
