// Package backendtest is the test suite every bb backend runs: a bottle
// started from a test root filesystem is changed from inside (nested tree,
// a 50 MB random file, a symlink, a hard link, a setuid file owned by uid
// 1000, an empty directory, a deleted base file, scratch files in /tmp),
// committed with bottle.Manager.Commit, removed together with the
// runtime's copy of the snapshot, resumed with Manager.Resume, and must
// come back with an identical tree (excluded paths aside) and clean
// /tmp and /var/tmp.
//
// A backend's tests implement Harness (start a bottle from a directory,
// run a command in it, read back its tree, remove it) and call Run.
//
// ContainerHarness and SmolvmHarness drive the stand-ins (internal/testing/standin);
// the dir and Docker backends' harnesses are in their tests (the Docker
// one runs against the real daemon: an image of the directory loaded with
// the Engine API, API execs, the tree read through the container's
// overlay mount or an export).
// BB_MEASURE=1 turns on the method measurements (measure.go).
package backendtest
