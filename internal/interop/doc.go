// Package interop holds the interoperability matrix (interop_test.go):
// bb's exports read by docker load, podman load, ctr image import, skopeo
// (oci-archive: and docker-archive:), umoci, crane, regctl and oras; bb
// serve pulled by docker, skopeo, crane, oras, regctl, podman and ctr;
// and pushes from each of those clients into bb serve --allow-push,
// pulled back by the client and by bb pull. The clients are the real
// ones, installed by scripts/test-deps.sh (Debian packages, and go
// install at pinned versions); under CI a missing client fails the test.
// The package has no code of its own.
package interop
