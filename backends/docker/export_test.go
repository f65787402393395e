package docker

import (
	"context"
	"sort"

	"github.com/bot-bottle/bb/snapshot"
)

// PlanOf returns the paths and deletions an incremental snapshot of the
// container would stream, from its upper directory (upper) or from the
// daemon's change list.
func PlanOf(ctx context.Context, c Client, id string, upper bool) (paths, deleted []string, err error) {
	ci, err := c.ContainerInspect(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	s := &source{c: c, log: (&Runtime{}).log(), id: ci.ID, name: id}
	if upper {
		if s.upper, err = findUpper(ci); err != nil {
			return nil, nil, err
		}
	}
	ch, err := s.changes(ctx, snapshot.DefaultExcludes)
	if err != nil {
		return nil, nil, err
	}
	p := newPlan(ch, snapshot.DefaultExcludes, nil)
	for d := range p.deleted {
		deleted = append(deleted, d)
	}
	sort.Strings(deleted)
	return p.paths, deleted, nil
}
