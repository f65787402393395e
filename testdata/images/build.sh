#!/usr/bin/env bash
# Rebuilds the golden archives of testdata/images: the same tiny image
# (tree below, no binaries, so each archive is a few KiB) written by the
# real tools whose output bb import must keep reading. Needs root, a
# Docker daemon, podman, skopeo, crane, oras, regctl, docker-registry and
# Go (scripts/test-deps.sh installs them). Run from anywhere:
#   testdata/images/build.sh
# then commit the archives; archive/golden_test.go pins that bb reads them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export PATH="$PATH:$(go env GOPATH)/bin"
for c in docker podman skopeo crane oras regctl docker-registry go tar; do
  command -v "$c" >/dev/null || { echo "build.sh: $c is missing (scripts/test-deps.sh installs it)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/bb-golden.XXXXXX)
regpid=
cleanup() {
  [ -n "$regpid" ] && kill "$regpid" 2>/dev/null || true
  docker rmi -f bb-golden:v1 >/dev/null 2>&1 || true
  podman rmi -f localhost/bb-golden:v1 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
export SOURCE_DATE_EPOCH=1700000000
rm -f "$here"/*.tar

# The tree (archive/golden_test.go checks it after bb import and resume).
root=$work/rootfs
mkdir -p "$root/etc" "$root/bin" "$root/data"
printf 'hello from a golden image\n' >"$root/etc/hello.txt"
printf '#!/bin/sh\necho hi\n' >"$root/bin/greet"
printf 'secret\n' >"$root/data/secret.txt"
ln "$root/etc/hello.txt" "$root/etc/hello-hard.txt"
ln -s etc/hello.txt "$root/link"
chmod 0644 "$root/etc/hello.txt"; chmod 0755 "$root/bin/greet" "$root/etc" "$root/bin"
chmod 0700 "$root/data"; chmod 0600 "$root/data/secret.txt"
tar --sort=name --mtime=@$SOURCE_DATE_EPOCH --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/rootfs.tar" .

# A layout directory, packed the same way every time.
pack() { tar --sort=name --mtime=@$SOURCE_DATE_EPOCH --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .; }

# docker save (Docker's own archive: manifest.json, and index.json since 25).
docker import --change 'CMD ["/bin/greet"]' "$work/rootfs.tar" bb-golden:v1 >/dev/null
docker save bb-golden:v1 -o "$here/docker-save.tar"

# skopeo copy to oci-archive:, and a zstd image.
skopeo copy -q docker-daemon:bb-golden:v1 oci-archive:"$here/skopeo-oci.tar":v1
skopeo copy -q --dest-compress-format zstd docker-daemon:bb-golden:v1 oci-archive:"$here/zstd-oci.tar":v1

# podman save (Debian's podman; docker-archive format, its default).
podman import --change 'CMD ["/bin/greet"]' "$work/rootfs.tar" localhost/bb-golden:v1 >/dev/null
podman save -o "$here/podman-save.tar" localhost/bb-golden:v1 >/dev/null

# A registry for the clients that copy from one.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port, secret: golden}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
regpid=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
reg=127.0.0.1:$port
skopeo copy -q --dest-tls-verify=false docker-daemon:bb-golden:v1 "docker://$reg/golden:v1"

# crane pull --format=oci
crane pull --insecure --format=oci "$reg/golden:v1" "$work/crane"
pack "$work/crane" "$here/crane-oci.tar"

# oras copy --to-oci-layout, with a referrer attached in the registry.
printf '{"sbom":"golden"}\n' >"$work/sbom.json"
(cd "$work" && oras attach --no-tty --plain-http --artifact-type application/vnd.example.sbom.v1+json "$reg/golden:v1" sbom.json:application/json >/dev/null)
oras copy --no-tty -r --from-plain-http --to-oci-layout "$reg/golden:v1" "$work/oras:v1" >/dev/null
pack "$work/oras" "$here/oras-oci.tar"

# regctl image copy ocidir://, with a referrer attached in the registry.
regctl registry set --tls disabled "$reg" >/dev/null
printf 'signed by golden\n' >"$work/sig.txt"
regctl artifact put --subject "$reg/golden:v1" --artifact-type application/vnd.example.signature.v1 \
  --file "$work/sig.txt" --file-media-type text/plain >/dev/null
regctl image copy --referrers "$reg/golden:v1" "ocidir://$work/regctl:v1" >/dev/null
pack "$work/regctl" "$here/regctl-oci.tar"

# bb export of this version.
(cd "$repo" && go build -o "$work/bb" ./cmd/bb)
"$work/bb" --home "$work/bbhome" commit --from-dir "$root" --slug golden >/dev/null
"$work/bb" --home "$work/bbhome" export golden -o "$here/bb-export.tar" >/dev/null

# bb export of the layout before 2026-11 (image and metadata artifact as
# two index.json entries), from the commit that last wrote it.
old=7867a01
mkdir "$work/bb-old"
(cd "$repo" && git archive "$old") | tar -x -C "$work/bb-old"
(cd "$work/bb-old" && go build -o "$work/bb-old-bin" ./cmd/bb)
"$work/bb-old-bin" --home "$work/bbhome-old" commit --from-dir "$root" --slug golden >/dev/null
"$work/bb-old-bin" --home "$work/bbhome-old" export golden -o "$here/bb-export-two-entries.tar" >/dev/null

# Which versions wrote them.
{
  echo "# Tools that wrote the archives of this directory (build.sh)."
  echo "docker: $(docker version --format '{{.Server.Version}}')"
  echo "podman: $(podman --version)"
  echo "skopeo: $(skopeo --version)"
  echo "crane: $(crane version)"
  echo "oras: $(oras version | sed -n 's/^Version: *//p')"
  echo "regctl: $(regctl version --format '{{.VCSTag}}')"
  echo "docker-registry: $(docker-registry --version | awk '{print $3}')"
  echo "bb: $(cd "$repo" && git describe --always --dirty 2>/dev/null || echo unknown)"
} >"$here/VERSIONS"

ls -l "$here"/*.tar
du -ch "$here"/*.tar | tail -1
