package bottle

import (
	"context"
	"encoding/json"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ImageSize sums the manifest, config and layer sizes of an image.
func ImageSize(ctx context.Context, s *oci.Store, desc v1.Descriptor) (int64, error) {
	man, err := s.Manifest(ctx, desc)
	if err != nil {
		return 0, err
	}
	n := desc.Size + man.Config.Size
	for _, l := range man.Layers {
		n += l.Size
	}
	return n, nil
}

// Inspection is what bb inspect shows.
type Inspection struct {
	Ref      string          `json:"ref"`
	Digest   string          `json:"digest"`
	Size     int64           `json:"size"`
	Manifest *v1.Manifest    `json:"manifest"`
	Config   *v1.ConfigFile  `json:"config"`
	History  []string        `json:"snapshots,omitempty"`
	Raw      json.RawMessage `json:"-"`
}

// Inspect resolves a slug, a store tag or a digest and reads its manifest
// and config.
func (m *Manager) Inspect(ctx context.Context, ref string) (*Inspection, error) {
	desc, err := m.Store.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	man, err := m.Store.Manifest(ctx, desc)
	if err != nil {
		return nil, err
	}
	cfg, err := m.Store.Config(ctx, man.Config.Digest)
	if err != nil {
		return nil, err
	}
	size, _ := ImageSize(ctx, m.Store, desc)
	ins := &Inspection{Ref: ref, Digest: desc.Digest.String(), Size: size, Manifest: man, Config: cfg}
	if slug := man.Annotations[oci.SlugAnnotation]; slug != "" {
		if entries, err := snapshot.List(ctx, m.Store, slug); err == nil {
			for _, e := range entries {
				ins.History = append(ins.History, e.Tag)
			}
		}
	}
	return ins, nil
}
