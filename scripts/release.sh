#!/usr/bin/env bash
# Builds stripped, version-stamped static binaries for every target into
# dist/: edgegw-linux-armv6 (Pi Zero/1), -armv7, -arm64 and -amd64, with
# SHA256SUMS.
#
#   scripts/release.sh              version from `git describe`
#   VERSION=v1.2.3 scripts/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
mkdir -p dist
rm -f dist/edgegw-* dist/SHA256SUMS
for target in linux/arm/6 linux/arm/7 linux/arm64 linux/amd64; do
  IFS=/ read -r os arch arm <<<"$target"
  name=edgegw-$os-$arch${arm:+v$arm}
  echo "building dist/$name ($version)"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=${arm:-} \
    go build -trimpath -ldflags "-s -w -X main.version=$version" -o "dist/$name" ./cmd/edgegw
done
(cd dist && sha256sum edgegw-* > SHA256SUMS)
ls -l dist
