// Package bottle runs bb's user-facing operations on bottles (commit,
// resume, list) by tying a backend's Runtime to the snapshot pipeline, the
// local store and the state files shared with the bot-bottle launcher.
//
//	commit:  Runtime.Inspect ─► Runtime.Prepare (Source, Base) ─► snapshot.Build
//	         ─► Runtime.Load (load into the runtime) ─► snapshot.Publish
//	         ─► state.RecordCommit (committed-image, preserve marker)
//	resume:  state.CommittedImage ─► Runtime.Has? else Runtime.Load from
//	         the store ─► Runtime.Boot
//
// Each step runs only if the one before succeeded; a failure rolls back
// what the commit added, so the previous snapshot stays the current one.
package bottle
