#!/usr/bin/env bash
# Target checks, run by scripts/test.sh:
#   1. systemd/edgegw.service passes `systemd-analyze verify` with no warning
#      at all, and its `systemd-analyze security --offline=true` exposure
#      score is printed;
#   2. the linux/arm GOARM=6 binary under `qemu-arm-static -cpu arm1176`
#      (Raspberry Pi Zero/1) and the linux/arm64 binary under
#      `qemu-aarch64-static` each run the demo configuration (its
#      simulators, on other ports) and readings come out of their broker.
# About a minute in all.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/sbin"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "check-target: $1 not found"; exit 1; }; }
need systemd-analyze
need qemu-arm-static
need qemu-aarch64-static
need mosquitto_sub

echo "-- building linux/amd64, linux/arm GOARM=6 and linux/arm64"
build() { # os arch arm out
  CGO_ENABLED=0 GOOS=$1 GOARCH=$2 GOARM=${3:-} go build -trimpath \
    -ldflags "-s -w -X main.version=check" -o "$4" ./cmd/edgegw
}
build linux amd64 "" "$work/edgegw-amd64"
build linux arm 6 "$work/edgegw-armv6"
build linux arm64 "" "$work/edgegw-arm64"

echo "-- systemd-analyze verify systemd/edgegw.service"
# The unit names /usr/local/bin/edgegw; verify checks that it exists, so
# a copy points at the binary just built.
unit="$work/edgegw.service"
sed "s#/usr/local/bin/edgegw#$work/edgegw-amd64#g" systemd/edgegw.service >"$unit"
out=$(systemd-analyze verify "$unit" 2>&1) || { echo "$out"; echo "check-target: verify failed"; exit 1; }
if [ -n "$out" ]; then
  echo "$out"; echo "check-target: systemd-analyze verify warned"; exit 1
fi
echo "   no warnings"
score=$(systemd-analyze security --offline=true "$unit" 2>&1 | grep -i "overall exposure" || true)
echo "   ${score:-exposure score not reported}"

# Free-ish ports for one run: a random base, several apart per run.
base=$((20000 + RANDOM % 20000))

run_target() { # label emulator... -- binary
  local label=$1; shift
  local port=$((base)) health=$((base + 1)) seat=$((base + 2))
  base=$((base + 10))
  local dir="$work/$label"
  mkdir -p "$dir"
  echo "-- $label: demo on 127.0.0.1:$port"
  VIN=TARGETCHECK0000001 \
  EDGEGW_STATE="$dir/state" EDGEGW_SIMDIR="$dir/sim" \
  EDGEGW_BROKER="127.0.0.1:$port" EDGEGW_HEALTH="127.0.0.1:$health" \
  EDGEGW_SEAT="127.0.0.1:$seat" EDGEGW_UPLINK="mqtt://127.0.0.1:1" \
  EDGEGW_INTERVAL=1s EDGEGW_SEAT_INTERVAL=1s EDGEGW_TPMS_PERIOD=1s \
    "$@" -config configs/demo.toml >"$dir/log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  # The broker needs a moment under emulation; mosquitto_sub retries
  # nothing, so wait for the port first (bounded).
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; echo "check-target: $label exited"; exit 1; }
    sleep 0.2
  done
  local got
  if ! got=$(mosquitto_sub -h 127.0.0.1 -p "$port" -t 'vehicles/+/telemetry/#' -v -C 4 -W 20); then
    cat "$dir/log"; echo "check-target: $label: no readings from the broker"; exit 1
  fi
  echo "$got" | sed 's/^/   /' | cut -c1-150
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    cat "$dir/log"; echo "check-target: $label did not stop within 10s of SIGTERM"; exit 1
  fi
  wait "$pid" || { cat "$dir/log"; echo "check-target: $label exited with an error"; exit 1; }
  echo "   stopped cleanly on SIGTERM"
}

run_target armv6 qemu-arm-static -cpu arm1176 "$work/edgegw-armv6"
run_target arm64 qemu-aarch64-static "$work/edgegw-arm64"
echo "target checks passed"
