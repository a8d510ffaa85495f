#!/bin/sh
# Bus scheduler benchmark (issue 6): ten XY-MD02 slaves on one simulated
# RS-485 line at 9600 baud, polled every 500 ms with a 200 ms timeout and one
# retry; reports the live slaves' achieved/configured poll rate with every
# slave alive, with one dead slave quarantined, and with quarantine off.
# Target: live_rate_ratio ≥ 0.9 with the dead slave quarantined.
#
#   scripts/bench-drivers.sh [count]      (default 5 runs; each counts BENCH_SECONDS=6 after a 3 s warm-up)
set -eu
cd "$(dirname "$0")/.."
count=${1:-5}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
go test -run='^$' -bench=BenchmarkDeadSlave -benchtime=1x -count="$count" ./drivers/modbusdev | tee "$out"
echo
echo "median over $count runs:"
awk '/^BenchmarkDeadSlave/ {
	name=$1; sub(/-[0-9]+$/, "", name)
	for (i = 4; i < NF; i++) if ($(i+1) == "live_rate_ratio") v[name] = v[name] " " $i
}
END {
	for (n in v) {
		k = split(v[n], a, " "); # sort a[1..k]
		for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		m = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
		printf "  %-45s live_rate_ratio %.3f\n", n, m
	}
}' "$out" | sort
