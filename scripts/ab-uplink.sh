#!/bin/sh
# ab-uplink.sh: compare the uplink drain of two commits in the same run:
# builds BenchmarkDrain of each in a scratch worktree, alternates them
# COUNT times (default 3) on N queued readings (default 200,000) and prints
# the medians of msgs/s and CPU seconds per million messages.
#
#   scripts/ab-uplink.sh OLD NEW [N] [COUNT]
#
# e.g. scripts/ab-uplink.sh 7a411c7 HEAD
set -eu
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [N] [COUNT]" >&2; exit 2; }
cd "$(dirname "$0")/.."
A=$(git rev-parse --short "$1") B=$(git rev-parse --short "$2") N=${3:-200000} COUNT=${4:-3}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/src" 2>/dev/null || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/src" "$A"
(cd "$tmp/src/gateway/uplink" && go test -c -o "$tmp/a.test" .)
git -C "$tmp/src" checkout -q --detach "$B"
(cd "$tmp/src/gateway/uplink" && go test -c -o "$tmp/b.test" .)
cd "$tmp/src/gateway/uplink"
i=0
while [ $i -lt "$COUNT" ]; do
	for t in a b; do
		"$tmp/$t.test" -test.run '^$' -test.bench '^BenchmarkDrain$' -test.benchtime "${N}x" |
			sed -n "s/^\(BenchmarkDrain[^ 	]*\)/$t \1/p"
	done
	i=$((i + 1))
done | tee "$tmp/out"
awk -v A="$A" -v B="$B" '
function median(k,    n, i, j, t, a) {
	n = split(vals[k], a, " ")
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
	return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{
	name = $2; sub(/-[0-9]+$/, "", name); names[name] = 1
	for (i = 4; i < NF; i++) if ($(i + 1) == "msgs/s" || $(i + 1) == "cpu-s/Mmsg") vals[$1, name, $(i + 1)] = vals[$1, name, $(i + 1)] " " $i
}
END {
	print ""
	printf "%-22s %12s %12s %10s %12s %12s %10s\n", "median", "msgs/s " A, "msgs/s " B, "ratio", "cpu-s/M " A, "cpu-s/M " B, "ratio"
	for (n in names) {
		ma = median("a" SUBSEP n SUBSEP "msgs/s"); mb = median("b" SUBSEP n SUBSEP "msgs/s")
		ca = median("a" SUBSEP n SUBSEP "cpu-s/Mmsg"); cb = median("b" SUBSEP n SUBSEP "cpu-s/Mmsg")
		printf "%-22s %12.0f %12.0f %10.2f %12.2f %12.2f %10.2f\n", n, ma, mb, mb / ma, ca, cb, cb / ca
	}
}' "$tmp/out"
