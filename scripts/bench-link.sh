#!/bin/sh
# bench-link.sh: drain a backlog of demo readings (five devices, as
# configs/demo.toml makes them) over an emulated link (mqtt/mqtttest.Links:
# lan, lte, 3g, flaky; toxiproxy in-process) with Mosquitto's bridge and with
# the uplink (unbatched QoS 1, batched QoS 1 and QoS 2), COUNT times each
# (default 3), all rows in one run, and print the medians: readings/s, bytes
# on the link per reading each way, the forwarder's CPU per reading, and the
# window each row really had.
#
#   scripts/bench-link.sh PROFILE [N] [COUNT]     N: backlog, default 100000
#
# Every row has the same window: max_inflight_messages 65000 on both brokers
# (EDGEGW_BENCH_INFLIGHT changes it), which the remote announces to the
# uplink as its Receive Maximum (not 65535, MQTT's largest: see linkWindow
# in gateway/uplink/linkbench_test.go). Not Mosquitto's default of 20: Mosquitto
# 2.0.11's bridge keeps no window but 1 while it drains a queue (each PUBACK
# moves up to max_inflight_messages more messages into flight; at MQTT 5 the
# remote's Receive Maximum fares the same), so over lte it had thousands of
# PUBLISHes unacknowledged while the uplink kept to 20. The column "max in
# flight" is the most QoS 1/2 PUBLISHes each forwarder had unacknowledged at
# once, read off the link: it shows the window each row really had.
# It ends with one line per profile:
#   PROFILE: batched/bridge readings/s R1, unbatched/bridge readings/s R2, batched/bridge bytes per reading R3
# Goals (issue 14): R1 >= 20 over lte, R2 >= 1.0, R3 <= 0.20.
set -eu
PROFILE=${1:?usage: bench-link.sh PROFILE [N] [COUNT]}
N=${2:-100000}
COUNT=${3:-3}
cd "$(dirname "$0")/.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "settings: profile $PROFILE, backlog $N demo readings, $COUNT runs; window (max_inflight_messages) ${EDGEGW_BENCH_INFLIGHT:-65000} on every broker;"
echo "  uplink: MQTT 5.0 (child process), batches of up to 500 (deflate); bridge: MQTT 3.1.1, cleansession false"
EDGEGW_LINK_PROFILE=$PROFILE go test -run '^$' -bench '^BenchmarkLink$' -benchtime "${N}x" -count "$COUNT" \
	-timeout 6h ./gateway/uplink/ | grep -v '^time=' | tee "$out"
awk -v profile="$PROFILE" '
function median(name, unit,    n, i, j, t, a) {
	n = split(vals[name, unit], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	if (n == 0) return ""
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
/^BenchmarkLink\// {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkLink\//, "", name); names[name] = 1
	for (i = 3; i < NF; i++) vals[name, $(i + 1)] = vals[name, $(i + 1)] " " $i
}
END {
	print ""
	printf "%-16s %12s %12s %12s %12s %14s\n", profile ": median", "readings/s", "up B/rdg", "down B/rdg", "cpu us/rdg", "max in flight"
	split("bridge-qos1 unbatched-qos1 batched-qos1 batched-qos2", rows, " ")
	for (k = 1; k <= 4; k++) {
		n = rows[k]
		if (!(n in names)) continue
		printf "%-16s %12.0f %12.1f %12.2f %12.1f %14.0f\n", n, median(n, "readings/s"), median(n, "up-B/reading"),
			median(n, "down-B/reading"), median(n, "cpu-us/reading"), median(n, "max-inflight")
	}
	br = median("bridge-qos1", "readings/s"); bb = median("bridge-qos1", "up-B/reading") + median("bridge-qos1", "down-B/reading")
	ba = median("batched-qos1", "readings/s"); bab = median("batched-qos1", "up-B/reading") + median("batched-qos1", "down-B/reading")
	un = median("unbatched-qos1", "readings/s")
	if (br > 0 && bb > 0)
		printf "%s: batched/bridge readings/s %.2f, unbatched/bridge readings/s %.2f, batched/bridge bytes per reading %.2f\n",
			profile, ba / br, un / br, bab / bb
}' "$out"
