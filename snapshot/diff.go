package snapshot

import (
	"context"
	"io"

	"github.com/bot-bottle/bb/fileindex"
	"github.com/bot-bottle/bb/oci"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// DiffIndexes compares the file index of snapshot from with a newer
// listing (cur: another snapshot's index, or a running bottle's listing)
// and reports every added, changed and deleted path to fn. When most
// inodes differ (the two come from different instances of the bottle,
// before and after a resume), it compares again with
// fileindex.Options.Quick, so the report shows what changed rather than
// every path. open must return cur from its start on every call.
func DiffIndexes(ctx context.Context, s *oci.Store, from v1.Hash, open func() (io.ReadCloser, error), fn func(fileindex.Change)) (*fileindex.Plan, error) {
	old := func() (io.ReadCloser, error) { return OpenIndex(ctx, s, from) }
	run := func(quick bool, report func(fileindex.Change)) (*fileindex.Plan, error) {
		cur, err := open()
		if err != nil {
			return nil, err
		}
		defer cur.Close()
		plan, err := fileindex.Diff(ctx, old, cur, fileindex.Options{NoPaths: true, Quick: quick, Report: report})
		if err == nil {
			_, err = io.Copy(io.Discard, cur) // the producer's exit status
		}
		return plan, err
	}
	var changes []fileindex.Change
	plan, err := run(false, func(c fileindex.Change) { changes = append(changes, c) })
	if err != nil {
		return nil, err
	}
	if float64(plan.Renumbered) <= FullRatio*float64(plan.Entries) {
		for _, c := range changes {
			fn(c)
		}
		return plan, nil
	}
	changes = nil
	return run(true, fn)
}
