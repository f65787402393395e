// Package bottle runs bb's user-facing operations on bottles (commit,
// resume, list, import, and the adoption of pulled snapshots) by tying a
// backend's Runtime to the snapshot pipeline, the local store and the
// state files shared with the bot-bottle launcher.
//
//	commit:  Runtime.Inspect ─► Runtime.Prepare (Source, Base) ─► snapshot.Build
//	         ─► Runtime.Load (load into the runtime) ─► snapshot.Publish
//	         ─► state.RecordLoad (committed-image, preserve marker, bb-loaded)
//	resume:  state.CommittedImage ─► Runtime.Has? else Runtime.Load from
//	         the store; also Load when bb-loaded says committed-image, as
//	         bb left it, holds an older snapshot than the store's tag
//	         (commit --no-load, import) ─► Runtime.Boot
//	adopt:   an Arrival (Manager.Import: archive.Read; bb pull: remote.Pull)
//	         ─► AdoptSlugs (--as, else the recorded slug; refuse a taken one)
//	         ─► AdoptAll: snapshot.Publish, metadata.json restored,
//	         Runtime.Load if asked, state.RecordLoad
//
// Each step runs only if the one before succeeded; a failure rolls back
// what the commit added, so the previous snapshot stays the current one.
// Import and pull adopt the same way; pull picks and checks the slug from
// the manifest alone, before any blob is fetched.
package bottle
