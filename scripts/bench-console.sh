#!/usr/bin/env bash
# bench-console.sh — what the web console costs the gateway at the demo's
# load: the demo (configs/demo.toml, default intervals, no cloud) runs three
# ways, alternating A B C per round: A console off, B console on with no
# page open, C console on with one page's event stream open (curl reading
# /console/events, which is what a browser tab costs the gateway). Per run:
# CPU seconds over the measured window (utime+stime from /proc/PID/stat),
# RSS at the end and its high-water mark (/proc/PID/status), and for C the
# bytes the page was sent. Medians over the rounds.
#
# usage: scripts/bench-console.sh [-r ROUNDS] [-w WARMUP_S] [-d DURATION_S]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 warm=10 dur=60
while getopts "r:w:d:" o; do
  case $o in r) rounds=$OPTARG ;; w) warm=$OPTARG ;; d) dur=$OPTARG ;; *) exit 2 ;; esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT; [ -n "${KEEP:-}" ] && trap - EXIT
go build -o "$work/edgegw" ./cmd/edgegw
hz=$(getconf CLK_TCK)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # mode → "cpu_s rss_kb hwm_kb sse_bytes" in $work/out
  local mode=$1 dir="$work/run-$1-$RANDOM" health broker seat
  health="127.0.0.1:$(port)" broker="127.0.0.1:$(port)" seat="127.0.0.1:$(port)"
  mkdir -p "$dir"
  sed 's/^enabled = true$/enabled = '"$([ "$mode" = A ] && echo false || echo true)"'/' configs/demo.toml >"$dir/demo.toml"
  VIN=BENCH EDGEGW_STATE="$dir/state" EDGEGW_SIMDIR="$dir/sim" EDGEGW_BROKER="$broker" \
    EDGEGW_HEALTH="$health" EDGEGW_SEAT="$seat" EDGEGW_UPLINK=mqtt://127.0.0.1:1 \
    "$work/edgegw" -config "$dir/demo.toml" >"$dir/log" 2>&1 &
  local pid=$!
  sleep "$warm"
  local sse=0 cpid=""
  if [ "$mode" = C ]; then
    curl -sN "http://$health/console/events" >"$dir/sse" &
    cpid=$!
  fi
  local t0; t0=$(awk '{print $14+$15}' "/proc/$pid/stat")
  sleep "$dur"
  local t1; t1=$(awk '{print $14+$15}' "/proc/$pid/stat")
  local rss hwm
  rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")
  hwm=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
  if [ -n "$cpid" ]; then kill "$cpid"; wait "$cpid" 2>/dev/null || true; sse=$(wc -c <"$dir/sse"); fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  echo "$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN{printf "%.2f", (b-a)/hz}') $rss $hwm $sse" >"$work/out"
}

declare -A res
for r in $(seq "$rounds"); do
  for m in A B C; do
    run $m
    out=$(cat "$work/out")
    echo "round $r $m: cpu_s=$(cut -d' ' -f1 <<<"$out") rss_kb=$(cut -d' ' -f2 <<<"$out") hwm_kb=$(cut -d' ' -f3 <<<"$out") sse_bytes=$(cut -d' ' -f4 <<<"$out")"
    res[$m]+="$out"$'\n'
  done
done
median() { sort -n | awk '{a[NR]=$1} END{print (NR%2)? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "medians over $rounds rounds, ${dur}s windows:"
for m in A B C; do
  col() { printf '%s' "${res[$m]}" | awk -v c="$1" 'NF{print $c}' | median; }
  printf '%s cpu_s=%s rss_kb=%s hwm_kb=%s sse_bytes=%s\n' "$m" "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
done
