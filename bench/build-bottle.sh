#!/usr/bin/env bash
# Builds the bench bottles that `make bench` measures, cached under .bench/:
#
#   bot-bottle-bench        ~1 GB: Debian bookworm minbase + git, ca-certificates,
#                           curl, python3-minimal...; the Go toolchain from
#                           /usr/local/go; 30k generated source files; 250 MB of
#                           generated binaries; then ~150 MB of agent work.
#   bot-bottle-bench-small  ~0.25 GB: bare minbase, 5k files, 60 MB of binaries,
#                           then ~40 MB of agent work.
#   .bench/guest-1g         the 1 GB bottle (with its agent work) as a plain
#                           directory: a smolvm machine's root filesystem for the
#                           smolvm stand-in and the seed's smolvm pipeline.
#
# Each bottle is a Docker container (--network none, sleep infinity) started from
# an image imported from the root filesystem directory (bb-bench-base:1g,
# bb-bench-base:small); the agent work (new files, rewritten files, deleted files)
# is applied inside the running container with docker exec, so it lives in the
# container's writable layer as an agent's work would.
#
# Every stage is cached: a rerun only redoes what is missing. BENCH_REBUILD=1
# starts over. Needs: root, debootstrap, network access to a Debian mirror, a
# running dockerd, Go. The mirror is DEBIAN_MIRROR, or else the Debian archive
# this host's apt sources name (/etc/apt/sources.list, sources.list.d/*.list
# and deb822 *.sources), or else http://deb.debian.org/debian.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=${BENCH_DIR:-$ROOT/.bench}

# host_mirror [APT_DIR]: the first enabled Debian archive URI (not a security
# archive) in the apt sources under APT_DIR (default /etc/apt); empty if none.
host_mirror() {
	local apt=${1:-/etc/apt} f
	local files=()
	[ -f "$apt/sources.list" ] && files+=("$apt/sources.list")
	for f in "$apt"/sources.list.d/*.list "$apt"/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	((${#files[@]})) || return 0
	awk '
		function flush() {
			if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled !~ /^[ \t]*(no|false|0)[ \t]*$/ && uris != "" && suites !~ /-security/) {
				n = split(uris, u, /[ \t]+/)
				for (i = 1; i <= n; i++) if (ok(u[i])) { print u[i]; found = 1; exit }
			}
			types = ""; uris = ""; suites = ""; enabled = ""
		}
		function ok(uri) { return uri ~ /^(https?|file):\/\// && uri !~ /-security\/?$/ }
		function field(line) { sub(/^[^:]*:[ \t]*/, "", line); return line }
		FILENAME ~ /\.sources$/ {
			if (FILENAME != cur) { flush(); cur = FILENAME }
			if ($0 ~ /^[ \t]*$/) { flush(); next }
			if ($0 ~ /^[ \t]*#/) next
			if (tolower($0) ~ /^types:/) types = field($0)
			else if (tolower($0) ~ /^uris:/) uris = field($0)
			else if (tolower($0) ~ /^suites:/) suites = field($0)
			else if (tolower($0) ~ /^enabled:/) enabled = tolower(field($0))
			next
		}
		$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
			if (ok($i) && $(i + 1) !~ /-security/) { print $i; found = 1; exit }
		}
		END { if (!found) flush() }
	' "${files[@]}" | sed 's:/*$::'
}

MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
GOROOT_SRC=${BENCH_GOROOT:-/usr/local/go}
# Bump when the content below changes: images and bottles carry it as a label.
VERSION=1
FULL_PKGS=git,ca-certificates,procps,less,openssh-client,xz-utils,python3-minimal,make,curl
ONLY=${BENCH_BOTTLES:-1g small}

log() { printf 'build-bottle: %s\n' "$*" >&2; }

if [ "${1:-}" = --print-mirror ]; then
	echo "$MIRROR"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	log "run as root (debootstrap and the bottle's file owners need it)"
	exit 1
fi
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
mkdir -p "$BENCH/bin"
if [ -n "${BENCH_REBUILD:-}" ]; then
	log "BENCH_REBUILD set: removing cached root filesystems, images and bottles"
	docker rm -f bot-bottle-bench bot-bottle-bench-small >/dev/null 2>&1 || true
	docker rmi -f bb-bench-base:1g bb-bench-base:small >/dev/null 2>&1 || true
	rm -rf "$BENCH"/rootfs-* "$BENCH"/guest-* "$BENCH"/debian-* "$BENCH"/*.done
fi

BBBENCH=$BENCH/bin/bbbench
(cd "$ROOT" && go build -o "$BBBENCH" ./bench/cmd/bbbench)

# debian NAME [PACKAGES]: a cleaned debootstrap minbase tree.
debian() {
	local name=$1 pkgs=${2:-} dir=$BENCH/$1
	if [ -e "$dir.done" ]; then return; fi
	log "debootstrap $SUITE into $dir${pkgs:+ with $pkgs} (a few minutes)"
	rm -rf "$dir"
	debootstrap --variant=minbase ${pkgs:+--include=$pkgs} "$SUITE" "$dir" "$MIRROR" >"$dir.log" 2>&1 ||
		{ tail -20 "$dir.log" >&2; log "debootstrap failed: see $dir.log"; exit 1; }
	# As a Dockerfile's apt-get clean would.
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	touch "$dir.done"
}

# rootfs SIZE DEBIAN FILES BIN_MB WITH_GO: the bottle's base root filesystem.
rootfs() {
	local size=$1 deb=$2 files=$3 binmb=$4 withgo=$5 dir=$BENCH/rootfs-$1
	if [ -e "$dir.done" ] && [ "$(cat "$dir.done")" = "$VERSION" ]; then return; fi
	log "composing $dir"
	rm -rf "$dir"
	cp -a "$BENCH/$deb" "$dir"
	if [ "$withgo" = yes ]; then
		cp -a "$GOROOT_SRC" "$dir/usr/local/go"
	fi
	"$BBBENCH" gen-base -files "$files" -bin-mb "$binmb" "$dir"
	echo "$VERSION" >"$dir.done"
}

# image SIZE: bb-bench-base:SIZE imported from the root filesystem.
image() {
	local size=$1 tag=bb-bench-base:$1 dir=$BENCH/rootfs-$1
	if [ "$(docker image inspect -f '{{index .Config.Labels "bench.version"}}' "$tag" 2>/dev/null)" = "$VERSION" ]; then return; fi
	log "docker import $dir as $tag"
	docker rm -f "$(bottle_name "$size")" >/dev/null 2>&1 || true
	docker rmi -f "$tag" >/dev/null 2>&1 || true
	tar --create --numeric-owner --xattrs --xattrs-include='*' --file=- --directory="$dir" . |
		docker import \
			--change 'ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--change 'WORKDIR /root' \
			--change 'CMD ["/bin/bash"]' \
			--change "LABEL bench.version=$VERSION" \
			- "$tag" >/dev/null
}

bottle_name() { if [ "$1" = 1g ]; then echo bot-bottle-bench; else echo "bot-bottle-bench-$1"; fi; }

# bottle SIZE WORK_MB FILES: the running bottle with the agent work applied.
bottle() {
	local size=$1 mb=$2 files=$3 name
	name=$(bottle_name "$size")
	if [ "$(docker inspect -f '{{.State.Running}} {{index .Config.Labels "bench.version"}}' "$name" 2>/dev/null)" = "true $VERSION" ]; then
		log "$name is running"
		return
	fi
	docker rm -f "$name" >/dev/null 2>&1 || true
	log "starting $name and applying ${mb} MB of agent work"
	docker run -d --name "$name" --network none --label "bench.version=$VERSION" \
		"bb-bench-base:$size" sleep infinity >/dev/null
	"$BBBENCH" apply-work -container "$name" -mb "$mb" -files "$files"
}

# guest SIZE WORK_MB FILES: the same bottle as a plain directory, for the smolvm
# stand-in (a smolvm machine's root filesystem) and the seed's smolvm pipeline.
guest() {
	local size=$1 mb=$2 files=$3 dir=$BENCH/guest-$1
	if [ -e "$dir.done" ] && [ "$(cat "$dir.done")" = "$VERSION" ]; then return; fi
	log "composing $dir (the bottle as a directory, for the smolvm stand-in)"
	rm -rf "$dir"
	cp -a "$BENCH/rootfs-$size" "$dir"
	"$BBBENCH" apply-work -dir "$dir" -mb "$mb" -files "$files"
	echo "$VERSION" >"$dir.done"
}

for size in $ONLY; do
	case $size in
	1g)
		debian debian-bookworm-full "$FULL_PKGS"
		rootfs 1g debian-bookworm-full 30000 250 yes
		image 1g
		bottle 1g 150 30000
		guest 1g 150 30000
		;;
	small)
		debian debian-bookworm-min
		rootfs small debian-bookworm-min 5000 60 no
		image small
		bottle small 40 5000
		;;
	*) log "unknown bottle size $size (want 1g or small)"; exit 2 ;;
	esac
done
for size in $ONLY; do
	name=$(bottle_name "$size")
	log "$name: $(docker exec "$name" du -sxh / 2>/dev/null | cut -f1) in $(docker exec "$name" sh -c 'find / -xdev | wc -l') entries"
done
