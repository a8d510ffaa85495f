#!/bin/sh
# bench-uplink.sh: drain N queued 200-byte readings (default 1,000,000) to a
# local Mosquitto with the uplink at QoS 1 and 2, and the same backlog with
# Mosquitto's own bridge between two Mosquittos, COUNT times each (default
# 5); print the medians, the uplink's CPU seconds per million messages and
# the uplink/bridge throughput ratio.
#
#   scripts/bench-uplink.sh [N] [COUNT]
#
# Targets (issue 5): QoS 1 >= 33,000 msgs/s, QoS 2 >= 15,000 msgs/s.
#
# Both sides run with the same in-flight window: every Mosquitto of the
# benchmarks gets max_inflight_messages from EDGEGW_BENCH_INFLIGHT (unset:
# Mosquitto's default, 20). The remote's value is the Receive Maximum the
# uplink obeys at MQTT 5.0; the local's bounds the bridge's outgoing
# messages (bridge_protocol_version mqttv311, which has no Receive Maximum).
set -eu
N=${1:-1000000}
COUNT=${2:-5}
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "settings: $N messages of 200 bytes, $COUNT runs; max_inflight_messages ${EDGEGW_BENCH_INFLIGHT:-20 (Mosquitto default)} on every broker;"
echo "  uplink: MQTT 5.0, topic aliases, window = remote Receive Maximum; bridge: MQTT 3.1.1, cleansession false;"
echo "  brokers: persistence false, max_queued_messages 0; subscriber: mosquitto_sub at the same QoS"
go test -run '^$' -bench '^(BenchmarkDrain|BenchmarkMosquittoBridge)$' -benchtime "${N}x" -count "$COUNT" \
	-timeout 2h ./gateway/uplink/ | tee "$out"
awk '
function median(name, unit,    n, i, j, t, a) {
	n = split(vals[name, unit], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return ""
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); names[name] = 1
	for (i = 3; i < NF; i++) vals[name, $(i + 1)] = vals[name, $(i + 1)] " " $i
}
END {
	print ""
	print "median of runs; cpu-s/Mmsg: CPU seconds per million messages of the forwarder (uplink or bridge),"
	print "the remote Mosquitto and mosquitto_sub; writes, sleeps: the forwarder'"'"'s per message (sleeps: times"
	print "it blocked, each a later wake-up); r-sleeps: the remote'"'"'s (near 0: never idle, it sets the pace)"
	printf "%-32s %8s %10s %10s %10s %8s %8s %8s\n", "", "msgs/s", "cpu-s/Mmsg", "remote", "sub", "writes", "sleeps", "r-sleeps"
	for (n in names) printf "%-32s %8.0f %10.2f %10.2f %10.2f %8.2f %8.2f %8.3f\n", n, median(n, "msgs/s"), median(n, "cpu-s/Mmsg"),
		median(n, "remote-cpu-s/Mmsg"), median(n, "sub-cpu-s/Mmsg"), median(n, "writes/msg"), median(n, "sleeps/msg"),
		median(n, "remote-sleeps/msg")
	for (q = 1; q <= 2; q++) {
		u = median("BenchmarkDrain/qos" q, "msgs/s"); m = median("BenchmarkMosquittoBridge/qos" q, "msgs/s")
		if (u != "" && m != "" && m > 0) printf "qos %d: uplink/bridge throughput ratio %.2f\n", q, u / m
	}
}' "$out"
