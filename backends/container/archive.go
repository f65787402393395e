package container

import (
	"context"
	"io"

	"github.com/bot-bottle/bb/archive"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppleNameAnnotation is the index.json annotation container image load
// reads an image's name from first.
const AppleNameAnnotation = oci.AppleNameAnnotation

// WriteArchive writes img as the OCI image layout tar container image
// load reads, named ref (a full reference: docker.io/library/NAME:TAG;
// "" leaves the names out): archive.WriteImage, bb's one archive writer.
func WriteArchive(ctx context.Context, w io.Writer, img v1.Image, ref string) error {
	return archive.WriteImage(ctx, w, img, ref)
}
