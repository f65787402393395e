#!/usr/bin/env bash
# bb's main job on a built-in default: snapshot a root filesystem directory
# (no container runtime needed), inspect it, change it, snapshot again,
# resume it elsewhere and compare. With a reachable Docker daemon, also a
# real bottle round trip: start, write files, commit, remove, resume.
set -euo pipefail
BB=${1:-bin/bb}
BB=$(realpath "$BB")
cd "$(dirname "$0")/.."
work=$PWD/.demo
rm -rf "$work" && mkdir -p "$work"
export BB_HOME=$work/home
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

rootfs=$work/rootfs
if go run ./internal/testing/testimage/mkrootfs "$rootfs" 2>/dev/null; then
  :
else
  echo "(busybox-static not installed: using a generated tree without binaries)"
  mkdir -p "$rootfs"/{etc,home/node,tmp,var/tmp}
  echo "root:x:0:0:root:/root:/bin/sh" > "$rootfs/etc/passwd"
fi
mkdir -p "$rootfs/home/node/project/src"
for i in $(seq 1 200); do echo "package main // file $i" > "$rootfs/home/node/project/src/f$i.go"; done
head -c 20000000 /dev/urandom > "$rootfs/home/node/project/data.bin"
ln -s project/data.bin "$rootfs/home/node/data-link"
echo "scratch" > "$rootfs/tmp/not-in-snapshot"

say bb commit --from-dir "$rootfs" --slug demo
"$BB" commit --from-dir "$rootfs" --slug demo
echo "the agent keeps working..." > "$rootfs/home/node/project/NOTES.md"
say bb commit demo
"$BB" commit demo
say bb list
"$BB" list
say bb inspect demo
"$BB" inspect demo
say bb resume demo --dir "$work/resumed"
"$BB" resume demo --dir "$work/resumed"
say diff -r rootfs resumed
if diff -r --no-dereference -x tmp -x proc -x sys -x dev -x run -x hostname -x hosts -x resolv.conf "$rootfs" "$work/resumed"; then
  echo "identical (tmp and runtime mounts aside)"
fi

if docker info >/dev/null 2>&1 && [ -x "$rootfs/usr/bin/tar" ]; then
  say "Docker round trip"
  docker rm -f bot-bottle-demo-docker >/dev/null 2>&1 || true
  tar -C "$rootfs" --numeric-owner -c . | docker import --change 'CMD ["/bin/sleep","infinity"]' - bb-demo-base:latest >/dev/null
  say docker run -d --name bot-bottle-demo-docker --network none bb-demo-base:latest
  docker run -d --name bot-bottle-demo-docker --network none bb-demo-base:latest >/dev/null
  docker exec bot-bottle-demo-docker sh -c 'echo "work in progress" > /home/node/agent.txt && rm /etc/base-file'
  say bb commit demo-docker
  "$BB" commit demo-docker
  say docker rm -f bot-bottle-demo-docker '&&' docker rmi bot-bottle-committed-demo-docker:latest
  docker rm -f bot-bottle-demo-docker >/dev/null
  docker rmi bot-bottle-committed-demo-docker:latest >/dev/null
  say bb resume demo-docker
  BB_DOCKER_NETWORK=none "$BB" resume demo-docker
  say docker exec bot-bottle-demo-docker cat /home/node/agent.txt
  docker exec bot-bottle-demo-docker cat /home/node/agent.txt
  docker rm -f bot-bottle-demo-docker >/dev/null
  docker rmi bot-bottle-committed-demo-docker:latest bb-demo-base:latest >/dev/null 2>&1 || true
else
  echo
  echo "(no Docker daemon reachable: skipped the Docker round trip)"
fi
