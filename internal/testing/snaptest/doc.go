// Package snaptest makes snapshots for tests that need one in a store
// without a bottle: snapshot.Build followed by snapshot.Publish, the two
// steps bottle.Manager runs around the runtime's own.
package snaptest
