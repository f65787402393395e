package smolvm

import (
	"context"
	"errors"
	"io"

	"github.com/bot-bottle/bb/backends/tarcmd"
	"github.com/bot-bottle/bb/snapshot"
)

var _ snapshot.Lister = (*Source)(nil)

// errNoStdin: incremental commits stream a listing and feed tar the
// changed paths, both through machine exec -i.
var errNoStdin = errors.New("incremental commits need smolvm machine exec -i (--method exec)")

// List implements snapshot.Lister: GNU find in the VM, through machine
// exec -i (uncapped output). With --method cp every commit is a full one.
func (s *Source) List(ctx context.Context, req snapshot.StreamRequest) (io.ReadCloser, error) {
	if s.Method == MethodCp {
		return nil, errNoStdin
	}
	return tarcmd.StartList(ctx, []string{s.Binary, "machine", "exec", "--name", s.Name, "-i", "--"}, "smolvm machine exec in "+s.Name, req.Excludes, s.OneFS)
}

// StreamPaths implements snapshot.Lister: GNU tar of the given entries,
// their names on its stdin.
func (s *Source) StreamPaths(ctx context.Context, req snapshot.StreamRequest, paths []string) (io.ReadCloser, error) {
	if s.Method == MethodCp {
		return nil, errNoStdin
	}
	return tarcmd.StartPaths(ctx, []string{s.Binary, "machine", "exec", "--name", s.Name, "-i", "--"}, "smolvm machine exec -i tar in "+s.Name, paths)
}
