package archive

import (
	"encoding/json"
	"fmt"

	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// parseManifest parses an image or artifact manifest (v1.Manifest
// carries artifactType and subject).
func parseManifest(b []byte) (*v1.Manifest, error) {
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if m.SchemaVersion != 2 {
		return nil, fmt.Errorf("manifest has schemaVersion %d, not 2", m.SchemaVersion)
	}
	return &m, nil
}

// isLayer reports whether a layer of media type mt is one bb reads:
// types.MediaType.IsLayer (gzip, zstd and uncompressed, OCI and docker,
// distributable or not) less docker's foreign layers, whose content
// lives at URLs outside the archive and the store.
func isLayer(mt types.MediaType) bool {
	return mt.IsLayer() && mt != types.DockerForeignLayer
}

// isMetadataArtifact reports whether m is the bottle metadata artifact.
// Other artifacts (a signature, an SBOM: any artifactType) are skipped,
// not refused.
func isMetadataArtifact(m *v1.Manifest) bool {
	return m.ArtifactType == snapshot.MetadataArtifactType
}

// layerType guesses a layer's media type from its first bytes (docker
// archives do not say).
func layerType(head []byte) types.MediaType {
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		return types.OCILayer
	case len(head) >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd:
		return types.OCILayerZStd
	default:
		return types.OCIUncompressedLayer
	}
}
