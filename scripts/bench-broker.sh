#!/usr/bin/env bash
# bench-broker.sh — edgegw's embedded MQTT broker against Debian's Mosquitto,
# same load, same machine, alternating A B A B, with medians and ratios.
#
# Scenarios (issue 3, 100-byte payloads, MQTT 3.1.1 unless -V 5):
#   qos0, qos1, qos2  10 publishers → 1 wildcard subscriber, as fast as the
#                     flow allows (each publisher at most -ahead messages
#                     ahead of the subscriber, so nothing needs dropping)
#   pairs             50 publisher/subscriber pairs at QoS 1
#   latency           10 publishers → 1 subscriber, QoS 1, fixed 10,000 msgs/s
#   idle              1,000 idle connections: RSS after start, bytes per connection
# Each run gets a freshly started broker. The broker is pinned to CPU 0 and
# the load tool (cmd/mqttload) to CPU 1 when taskset exists and there are
# two CPUs or more.
#
# A run ends when every message arrived, or after 5 s without progress
# (mosquitto's QoS 2 queue has stalled for over 2 s under this load).
#
# Figures: msgs_per_s (deliveries/s), cpu_s_per_M (broker CPU seconds per
# million delivered messages, from /proc/PID/stat), p50_us/p99_us
# (publish→deliver latency), rss_kb (broker RSS at the end), lost/dup,
# rss0_kb (RSS after start), per_conn_bytes (RSS growth per idle connection).
# The ratio is edgegw/mosquitto.
#
# usage: scripts/bench-broker.sh [-q] [-r ROUNDS] [-d DURATION] [-s "SCENARIOS"] [-V 5] [-o DIR]
#   -q           quick: 3 rounds of 1.5 s runs (under 2 minutes)
#   -r ROUNDS    rounds per broker (default 3)
#   -d DURATION  publishing time per run (default 8s; quick 1.5s)
#   -s LIST      scenarios to run (default "qos0 qos1 qos2 pairs latency idle")
#   -V VERSION   MQTT version of the load: 3.1.1 (default) or 5
#   -o DIR       keep results and logs in DIR (default a temporary directory)
# Environment: MOSQUITTO (default /usr/sbin/mosquitto).
set -euo pipefail

rounds=3
dur=8s
idle_wait=2s
scenarios="qos0 qos1 qos2 pairs latency idle"
out=""
version=3.1.1
while getopts "qr:d:s:o:V:h" opt; do
	case $opt in
	q) dur=1.5s; idle_wait=1s ;;
	r) rounds=$OPTARG ;;
	d) dur=$OPTARG ;;
	s) scenarios=$OPTARG ;;
	o) out=$OPTARG ;;
	V) version=$OPTARG ;;
	*) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
	esac
done

cd "$(dirname "$0")/.."
mosquitto=${MOSQUITTO:-/usr/sbin/mosquitto}
[[ -x $mosquitto ]] || mosquitto=$(command -v mosquitto || true)
[[ -x $mosquitto ]] || { echo "bench-broker: mosquitto not found" >&2; exit 1; }

if [[ -z $out ]]; then
	out=$(mktemp -d /tmp/bench-broker.XXXXXX)
fi
mkdir -p "$out/logs"
results=$out/results.txt
: >"$results"

echo "bench-broker: building into $out" >&2
CGO_ENABLED=0 go build -o "$out/mqttbroker" ./cmd/mqttbroker
CGO_ENABLED=0 go build -o "$out/mqttload" ./cmd/mqttload

pin_broker=() pin_load=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
	pin_broker=(taskset -c 0) pin_load=(taskset -c 1)
fi
# Room for 1,000 connections in both processes.
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

bpid=""
cleanup() {
	if [[ -n $bpid ]]; then
		kill "$bpid" 2>/dev/null || true
		wait "$bpid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

# free_port prints a loopback port nobody listens on, below the usual
# ephemeral range (a client's local port would make bind fail).
free_port() {
	local p
	for _ in $(seq 100); do
		p=$((12000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "bench-broker: no free port" >&2
	exit 1
}

# start_broker NAME PORT LOG: starts the broker, sets bpid, waits for the port.
start_broker() {
	local name=$1 port=$2 log=$3
	case $name in
	edgegw)
		"${pin_broker[@]}" "$out/mqttbroker" -listen "127.0.0.1:$port" \
			-max-queued 100000 -max-write-buffer $((4 << 20)) -sys-interval -1s \
			-max-session-bytes -1 -max-queued-bytes -1 >"$log" 2>&1 &
		;;
	mosquitto)
		local conf=$out/mosquitto.conf
		{
			echo "listener $port 127.0.0.1"
			echo "allow_anonymous true"
			echo "persistence false"
			echo "log_dest none"
			echo "set_tcp_nodelay true"
			echo "max_inflight_messages 64"
			echo "max_queued_messages 0"
			echo "sys_interval 0"
		} >"$conf"
		"${pin_broker[@]}" "$mosquitto" -c "$conf" >"$log" 2>&1 &
		;;
	esac
	bpid=$!
	for _ in $(seq 500); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			return 0
		fi
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.01
	done
	echo "bench-broker: $name did not start; log:" >&2
	cat "$log" >&2
	return 1
}

stop_broker() {
	local name=$1 log=$2
	if ! kill -0 "$bpid" 2>/dev/null; then
		echo "bench-broker: $name DIED during the run (log $log):" >&2
		tail -20 "$log" >&2
		wait "$bpid" 2>/dev/null || true
		bpid=""
		return 1
	fi
	kill "$bpid"
	wait "$bpid" 2>/dev/null || true
	bpid=""
}

scenario_args() {
	case $1 in
	qos0) echo "-pubs 10 -subs 1 -qos 0 -d $dur" ;;
	qos1) echo "-pubs 10 -subs 1 -qos 1 -d $dur" ;;
	qos2) echo "-pubs 10 -subs 1 -qos 2 -d $dur" ;;
	pairs) echo "-pubs 50 -subs 50 -pairs -qos 1 -d $dur" ;;
	latency) echo "-pubs 10 -subs 1 -qos 1 -rate 10000 -d $dur" ;;
	idle) echo "-idle 1000 -idle-wait $idle_wait" ;;
	*)
		echo "bench-broker: unknown scenario $1" >&2
		exit 2
		;;
	esac
}
for s in $scenarios; do scenario_args "$s" >/dev/null; done

start=$SECONDS
for ((r = 1; r <= rounds; r++)); do
	for s in $scenarios; do
		for b in edgegw mosquitto; do
			log=$out/logs/$s-$b-$r.log
			for attempt in 1 2 3; do
				port=$(free_port)
				if start_broker "$b" "$port" "$log"; then
					break
				fi
				((attempt < 3)) || exit 1
			done
			# shellcheck disable=SC2046
			line=$("${pin_load[@]}" "$out/mqttload" -addr "127.0.0.1:$port" -pid "$bpid" -v "$version" -drain 5s \
				-label "$b/$s/$r" $(scenario_args "$s") 2>"$out/logs/$s-$b-$r.load") || true
			if ! stop_broker "$b" "$log"; then
				line="${line:-mqttload} crashed=true"
			fi
			[[ -n $line ]] || line="mqttload label=$b/$s/$r ok=false err=\"no output\""
			echo "broker=$b scenario=$s round=$r $line" >>"$results"
			case $line in
			*ok=true*) echo "  round $r $s $b: ok" >&2 ;;
			*) echo "  round $r $s $b: FAILED: $line" >&2 ;;
			esac
		done
	done
done

echo
echo "bench-broker: MQTT $version, $rounds rounds, ${dur} runs, $(nproc) CPUs, pinned: ${pin_broker[*]:-no} / ${pin_load[*]:-no}, $((SECONDS - start)) s; results $results"
awk -v scenarios="$scenarios" '
function median(list,    n, a, i, t, j) {
	n = split(list, a, " ")
	if (n == 0) return "-"
	for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
	if (n % 2) return a[(n + 1) / 2] + 0
	return (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	delete kv
	for (i = 1; i <= NF; i++) if ((p = index($i, "=")) > 0) kv[substr($i, 1, p - 1)] = substr($i, p + 1)
	b = kv["broker"]; s = kv["scenario"]
	runs[s, b]++
	if (kv["ok"] != "true") failed[s, b]++
	for (k in kv) if (kv[k] ~ /^-?[0-9.]+$/ && kv[k] != "-1") vals[s, b, k] = vals[s, b, k] " " kv[k]
}
END {
	fig["qos0"] = "msgs_per_s cpu_s_per_M p50_us p99_us rss_kb lost"
	fig["qos1"] = fig["qos0"]; fig["qos2"] = fig["qos0"] " dup"; fig["pairs"] = fig["qos0"]
	fig["latency"] = "p50_us p99_us max_us cpu_s_per_M msgs_per_s lost"
	fig["idle"] = "rss0_kb rss_kb per_conn_bytes conns"
	printf "%-9s %-15s %14s %14s %9s\n", "scenario", "figure (median)", "edgegw", "mosquitto", "ratio"
	ns = split(scenarios, sl, " ")
	for (si = 1; si <= ns; si++) {
		s = sl[si]
		nf = split(fig[s], fl, " ")
		for (fi = 1; fi <= nf; fi++) {
			f = fl[fi]
			e = median(vals[s, "edgegw", f]); m = median(vals[s, "mosquitto", f])
			ratio = (e != "-" && m != "-" && m != 0) ? sprintf("%.2f", e / m) : "-"
			printf "%-9s %-15s %14s %14s %9s\n", s, f, e, m, ratio
		}
		printf "%-9s %-15s %14s %14s\n", s, "failed runs", (failed[s, "edgegw"] + 0) "/" (runs[s, "edgegw"] + 0), (failed[s, "mosquitto"] + 0) "/" (runs[s, "mosquitto"] + 0)
	}
}' "$results"
