#!/usr/bin/env bash
# abuse.sh — the resource attacks of issue 13 against the whole gateway
# (configs/demo.toml on its simulators, with a password file: ops is the
# operator, alice the hostile local account), started by this script on
# loopback with the systemd unit's LimitNOFILE=4096. For each attack it
# prints the broker's peak resident memory (the ceiling it reached) and the
# time ops takes to log in while the attack runs (cmd/mqttload abuse):
#
#   row 4   4,200 raw sockets to the MQTT port and 4,200 idle HTTP
#           keep-alives to the health port
#   row 5   1,050 sockets that never send CONNECT, reopened as closed
#   row 6   300 offline persistent sessions, then 100 QoS 1 messages of
#           10 kB for them
#   row 7   300 retained messages of 500 kB, then a subscriber that never
#           reads fed QoS 1 messages of 500 kB
#   row 10  8 guessers sending wrong passwords as fast as they can
#
# Each attack lasts -d (default 10s) and everything it opened is closed
# before the next; the whole run is bounded by a timeout and stops by
# itself (about a minute and a half). Not part of scripts/test.sh: the
# CI runs a tiny version of it (cmd/mqttload TestAbuseTiny).
#
# usage: scripts/abuse.sh [-d DURATION] [-a "4,5,6,7,10"]
set -euo pipefail
cd "$(dirname "$0")/.."

dur=10s
attacks=4,5,6,7,10
while getopts "d:a:" o; do
	case $o in
	d) dur=$OPTARG ;;
	a) attacks=$OPTARG ;;
	*) sed -n '2,24p' "$0"; exit 2 ;;
	esac
done

work=$(mktemp -d)
gw=
cleanup() {
	if [[ -n $gw ]] && kill -0 "$gw" 2>/dev/null; then
		kill -TERM "$gw"
		wait "$gw" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/edgegw" ./cmd/edgegw
CGO_ENABLED=0 go build -o "$work/mqttload" ./cmd/mqttload

printf 'ops-secret\n' | "$work/edgegw" -passwd "$work/passwd" -user ops
printf 'alice-secret\n' | "$work/edgegw" -passwd "$work/passwd" -user alice
sed -e "/^\[broker\]/a password_file = \"$work/passwd\"\nallow_anonymous = false" configs/demo.toml >"$work/abuse.toml"

bport=$("$work/mqttload" freeport)
hport=$("$work/mqttload" freeport)
sport=$("$work/mqttload" freeport)
export VIN=ABUSE0VIN00000001 EDGEGW_STATE="$work/state" EDGEGW_SIMDIR="$work/sim" \
	EDGEGW_BROKER="127.0.0.1:$bport" EDGEGW_HEALTH="127.0.0.1:$hport" EDGEGW_SEAT="127.0.0.1:$sport" \
	EDGEGW_UPLINK="mqtt://127.0.0.1:1"
(
	ulimit -n 4096 # systemd/edgegw.service's LimitNOFILE
	exec "$work/edgegw" -config "$work/abuse.toml" -log-level warn
) >"$work/edgegw.log" 2>&1 &
gw=$!

for _ in $(seq 100); do
	if (exec 3<>"/dev/tcp/127.0.0.1/$hport") 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$bport") 2>/dev/null; then
		break
	fi
	kill -0 "$gw" 2>/dev/null || { cat "$work/edgegw.log"; exit 1; }
	sleep 0.1
done
sleep 2 # the simulated devices come up
rss0=$(awk '/^VmRSS/ {print $2}' "/proc/$gw/status")

echo "# scripts/abuse.sh -d $dur -a $attacks, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, $(go env GOARCH)"
echo "# gateway pid $gw, RSS after start ${rss0} kB, LimitNOFILE 4096"
status=0
timeout 600 "$work/mqttload" abuse -addr "127.0.0.1:$bport" -health "127.0.0.1:$hport" -pid "$gw" \
	-user ops -password ops-secret -attacker alice -attacker-password alice-secret \
	-d "$dur" -attacks "$attacks" || status=$?
if ! kill -0 "$gw" 2>/dev/null; then
	echo "# the gateway died:"
	tail -20 "$work/edgegw.log"
	exit 1
fi
echo "# gateway log lines: $(wc -l <"$work/edgegw.log") (warn and above); last:"
tail -5 "$work/edgegw.log" | cut -c1-200
exit "$status"
