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
// ContainerHarness and SmolvmHarness drive the stand-ins (internal/standin);
// the dir backend's harness is in its tests. A Docker harness starts a
// container from an image of the directory (testimage.HostImage, docker
// load), runs docker exec, and reads the tree back with docker export.
// BB_MEASURE=1 turns on the method measurements (measure.go).
package backendtest
