package snaptest

import (
	"context"

	"github.com/bot-bottle/bb/oci"
	"github.com/bot-bottle/bb/snapshot"
)

// Commit builds req into s and publishes it, keeping keep earlier
// snapshots of the slug (negative keeps all). A snapshot that cannot be
// published is discarded.
func Commit(ctx context.Context, s *oci.Store, req snapshot.Request, keep int) (*snapshot.Result, error) {
	res, err := snapshot.Build(ctx, s, req)
	if err != nil {
		return nil, err
	}
	if err := snapshot.Publish(ctx, s, res, keep); err != nil {
		_ = snapshot.Discard(ctx, s, res)
		return nil, &snapshot.Error{Stage: snapshot.StageStore, Slug: req.Slug, Err: err}
	}
	return res, nil
}
