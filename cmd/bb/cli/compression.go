package cli

import (
	"fmt"

	"github.com/bot-bottle/bb/oci/layer"
)

// sendCompression parses --compression of bb push: as-stored (or empty),
// gzip or zstd.
func sendCompression(v string) (layer.Compression, error) {
	switch v {
	case "", "as-stored":
		return "", nil
	case string(layer.Gzip), string(layer.Zstd):
		return layer.Compression(v), nil
	}
	return "", fmt.Errorf("unknown --compression %q: as-stored, gzip or zstd", v)
}
