// Package state reads and writes the per-bottle files bb shares with the
// bot-bottle launcher, under <home>/state/<slug>/ (home is ~/.bot-bottle
// unless overridden):
//
//	metadata.json     identity, agent_name, cwd, copy_cwd, started_at, backend
//	committed-image   one line: the image reference (docker, macos-container)
//	                  or the absolute .smolmachine path (smolmachines) that the
//	                  next resume boots from
//	preserve          marker: keep this state directory at session end
//	bb-loaded         bb's own (the launcher neither reads nor writes it):
//	                  the snapshot digest bb last loaded under committed-image,
//	                  the runtime's image ID for it, and that file's time and
//	                  size then (see Home.LoadedRecord)
//
// Every write is atomic (temp file + rename in the same directory).
package state
