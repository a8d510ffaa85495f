#!/usr/bin/env bash
# Benchmarks of the outbound queue (buffer): append with the interval and
# always fsync policies, draining a backlog, and recovery of a 1 GiB backlog.
# Runs each benchmark COUNT times (default 5) and prints the median of every
# metric (records/s, amp, ns/op). amp is bytes written by the block device
# (sectors-written counter of /sys/dev/block/M:m/stat for the device holding
# TMPDIR, so journal writes count) per payload byte; it is absent on tmpfs or
# overlay. Other processes writing to the same device inflate it.
#
#   ./scripts/bench-buffer.sh                 everything, -count=5
#   COUNT=1 BENCH=Append ./scripts/bench-buffer.sh
#   EDGEGW_BENCH_BACKLOG=268435456 ./scripts/bench-buffer.sh   smaller recovery backlog
set -euo pipefail
cd "$(dirname "$0")/.."

count=${COUNT:-5}
bench=${BENCH:-Append|Drain|Recovery}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

df -h "${TMPDIR:-/tmp}" | tail -1
go test -run '^$' -bench "$bench" -benchtime="${BENCHTIME:-2s}" -count="$count" ./buffer/ | tee "$out"

echo
echo "medians of $count runs:"
awk '
/^Benchmark/ {
  name = $1
  if (!(name in seen)) { seen[name] = 1; order[++n] = name }
  for (i = 3; i < NF; i += 2) {
    key = name SUBSEP $(i+1)
    if (!(key in cnt)) { units[name] = units[name] " " $(i+1) }
    vals[key, ++cnt[key]] = $i + 0
  }
}
END {
  for (k = 1; k <= n; k++) {
    name = order[k]
    line = sprintf("%-45s", name)
    m = split(substr(units[name], 2), us, " ")
    for (u = 1; u <= m; u++) {
      key = name SUBSEP us[u]
      c = cnt[key]
      for (i = 1; i <= c; i++) a[i] = vals[key, i]
      for (i = 2; i <= c; i++) { v = a[i]; j = i - 1; while (j > 0 && a[j] > v) { a[j+1] = a[j]; j-- } a[j+1] = v }
      med = (c % 2) ? a[(c+1)/2] : (a[c/2] + a[c/2+1]) / 2
      line = line sprintf("  %.4g %s", med, us[u])
    }
    print line
  }
}' "$out"
