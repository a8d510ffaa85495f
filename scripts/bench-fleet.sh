#!/bin/sh
# bench-fleet.sh: a fleet of N gateways (default 1000) against one cloud
# Mosquitto that restarts: every gateway runs the real uplink and queue in
# one process (cmd/fleetsim, package gateway/uplink/fleet), queues 100
# records while the cloud is down, and drains them after the restart.
# Prints the CONNECTs per second the cloud accepted after the restart, its
# CPU, the memory per gateway, and ends with exactly one line:
#
#   fleet: N gateways, peak connects/s P, drained in T s, gaps G, lost L, KB per gateway M
#
#   scripts/bench-fleet.sh [N] [fleetsim flags...]
#   scripts/bench-fleet.sh 1000 -reconnect-min 30s     the fleet setting of the README
#
# Goals (issue 15): peak connects/s <= 10 % of N, gaps 0, lost 0.
# Needs mosquitto (Debian package) and about 8 file descriptors per
# gateway: the script raises the soft limit to the hard one.
set -eu
N=${1:-1000}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
need=$((N * 8 + 100))
have=$(ulimit -n)
if [ "$have" != unlimited ] && [ "$have" -lt "$need" ]; then
	echo "bench-fleet: ulimit -n is $have, $N gateways need about $need" >&2
	exit 2
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/fleetsim" ./cmd/fleetsim
echo "settings: $N gateways, 100 records each queued while the cloud is down (>= 5 s); $*"
"$bin/fleetsim" -n "$N" "$@" 2>&1
