#!/usr/bin/env bash
# The project's test command: installs what the tests need from Debian's
# packages when it is missing, then vets, checks formatting, runs every test
# with the race detector (fuzz seeds included) and cross-builds every target.
#
#   ./scripts/test.sh            everything
#   ./scripts/test.sh -short     skips the slow crash and end-to-end rounds
set -euo pipefail
cd "$(dirname "$0")/.."

short=()
[ "${1:-}" = "-short" ] && short=(-short)

# program → Debian package that provides it.
declare -A need=(
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [mosquitto_sub]=mosquitto-clients
  [node]=nodejs # gateway/uplink's Node consumer of batches (npm mqtt)
  [npm]=npm
  [socat]=socat
  [mbpoll]=mbpoll
  [qemu-arm-static]=qemu-user-static
  [qemu-aarch64-static]=qemu-user-static
  [systemd-analyze]=systemd
  [nats-server]=nats-server
  [rabbitmq-server]=rabbitmq-server
  [chromium]=chromium
)
missing=()
for prog in "${!need[@]}"; do
  command -v "$prog" >/dev/null 2>&1 || [ -x "/usr/sbin/$prog" ] || missing+=("${need[$prog]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  echo "installing: $pkgs"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
fi
# mosquitto lives in /usr/sbin, which a user's PATH may lack.
export PATH="$PATH:/usr/sbin"

echo "== go vet"
go vet ./...

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go test -race"
go test -race -timeout 12m "${short[@]}" ./...

echo "== cross builds (CGO_ENABLED=0)"
for target in linux/arm/6 linux/arm/7 linux/arm64 linux/amd64; do
  IFS=/ read -r os arch arm <<<"$target"
  echo "   $target"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=${arm:-} go build -o /dev/null ./...
done

if [ -x scripts/check-target.sh ]; then
  echo "== target checks"
  scripts/check-target.sh
fi
echo "all checks passed"
