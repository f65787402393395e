#!/usr/bin/env bash
# Installs and starts what bb's tests use, when missing: Debian packages
# (docker.io, skopeo, umoci, docker-registry, busybox-static, ...), the
# crane CLI, and a Docker daemon. Idempotent; needs root for installs.
set -euo pipefail

pkgs=(docker.io busybox-static skopeo umoci docker-registry apache2-utils openssl pigz ca-certificates tar time)
bins=(dockerd busybox skopeo umoci docker-registry htpasswd openssl pigz update-ca-certificates tar /usr/bin/time)
# Interop matrix (internal/interop): podman, and containerd for ctr.
pkgs+=(podman containerd)
bins+=(podman ctr)
missing=()
for i in "${!pkgs[@]}"; do
  command -v "${bins[$i]}" >/dev/null 2>&1 || missing+=("${pkgs[$i]}")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "test-deps: missing ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "test-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
if ! command -v crane >/dev/null 2>&1 && [ ! -x "$gobin/crane" ]; then
  echo "test-deps: installing crane" >&2
  go install github.com/google/go-containerregistry/cmd/crane@v0.22.1
fi

# Interop matrix clients at pinned versions.
if ! command -v oras >/dev/null 2>&1 && [ ! -x "$gobin/oras" ]; then
  echo "test-deps: installing oras" >&2
  go install oras.land/oras/cmd/oras@v1.3.6
fi

if ! command -v regctl >/dev/null 2>&1 && [ ! -x "$gobin/regctl" ]; then
  echo "test-deps: installing regctl" >&2
  go install github.com/regclient/regclient/cmd/regctl@v0.11.7
fi

# make lint: staticcheck, pinned.
staticcheck_ver=v0.8.2
if ! go version -m "$gobin/staticcheck" 2>/dev/null | grep -q "honnef.co/go/tools[[:space:]]*$staticcheck_ver"; then
  echo "test-deps: installing staticcheck $staticcheck_ver" >&2
  go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_ver"
fi


# OCI distribution-spec conformance suite (cmd/bb/cli TestOCIConformance),
# pinned; installs as $gobin/conformance.
conformance_ver=v0.0.0-20260831232431-97274622c111
if ! go version -m "$gobin/conformance" 2>/dev/null | grep -q "$conformance_ver"; then
  echo "test-deps: installing the OCI conformance suite $conformance_ver" >&2
  go install "github.com/opencontainers/distribution-spec/conformance@$conformance_ver"
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "test-deps: no Docker daemon reachable and not root to start one; Docker tests will be skipped" >&2
    exit 0
  fi
  echo "test-deps: starting dockerd" >&2
  mkdir -p /var/log
  nohup dockerd --iptables=false --bridge=none >/var/log/bb-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    echo "test-deps: dockerd did not come up; its log:" >&2
    tail -50 /var/log/bb-dockerd.log >&2
    exit 1
  fi
fi
