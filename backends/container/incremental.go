package container

import (
	"context"
	"io"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/snapshot"
)

var _ snapshot.Lister = (*ExecSource)(nil)

// List implements snapshot.Lister: GNU find in the container, through
// container exec (incremental commits; --method export makes full ones).
func (s *ExecSource) List(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	st, err := tarcmd.StartList(ctx, []string{s.Binary, "exec", "--user", "root", s.Name}, "container exec in "+s.Name, req.Excludes, s.OneFS)
	if err != nil {
		return nil, err
	}
	st.ReadAhead(ReadAhead) // container exec stops relaying 3 s after the process exits
	return st, nil
}

// StreamPaths implements snapshot.Lister: GNU tar of the given entries,
// their names on its stdin (container exec -i).
func (s *ExecSource) StreamPaths(ctx context.Context, req snapshot.StreamRequest, paths []string) (io.ReadCloser, error) {
	st, err := tarcmd.StartPaths(ctx, []string{s.Binary, "exec", "-i", "--user", "root", s.Name}, "container exec tar in "+s.Name, paths)
	if err != nil {
		return nil, err
	}
	st.ReadAhead(ReadAhead)
	return st, nil
}
