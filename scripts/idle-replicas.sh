#!/usr/bin/env bash
# idle-replicas.sh TOPICS PARTITIONS [KEY=VALUE ...]: what idle partition
# replicas cost. Starts three nodes with scripts/cluster.sh in a fresh DIR
# (default /tmp/weir-idle; the ports are cluster.sh's, so not while
# `make cluster` runs), creates TOPICS topics of PARTITIONS partitions with
# 3 replicas one after another (KEY=VALUE are topic settings, such as
# fsync=never), and waits for every partition to have a leader (at most
# WAIT seconds per topic, default 300). Then, 10 s later, it prints each
# node's CPU (utime+stime from /proc) over 30 s and its RSS, with the
# leaders counted before and after, and stops the nodes.
#
#   make build && scripts/idle-replicas.sh 3 100                # 300 per node
#   scripts/idle-replicas.sh 1 1000 fsync=never                  # 1,000 per node
set -euo pipefail

export WEIR=${WEIR:-bin/weir}
export DIR=${DIR:-/tmp/weir-idle}
WAIT=${WAIT:-300}
[[ $# -ge 2 ]] || { echo "usage: $0 TOPICS PARTITIONS [KEY=VALUE ...]" >&2; exit 2; }
topics=$1 partitions=$2
shift 2
settings=()
for kv in "$@"; do settings+=(--config "$kv"); done
here=$(dirname "$0")

"$here/cluster.sh" stop >/dev/null 2>&1 || true
rm -rf "$DIR"
"$here/cluster.sh" start >/dev/null
trap '"$here/cluster.sh" stop >/dev/null' EXIT
brokers=127.0.0.1:7520,127.0.0.1:7530,127.0.0.1:7540

# leaders: the partitions led, summed over the three nodes' /metrics.
leaders() {
	local total=0 n c
	for n in 1 2 3; do
		c=$(curl -s --max-time 5 "http://127.0.0.1:75$((n + 1))2/metrics" |
			awk '/^weir_partition_leader\{/ {s += $2} END {print s + 0}')
		total=$((total + c))
	done
	echo "$total"
}

start=$(date +%s)
for t in $(seq 1 "$topics"); do
	"$WEIR" --brokers "$brokers" topic create "idle$t" --partitions "$partitions" --replicas 3 \
		"${settings[@]}" >/dev/null
	want=$((t * partitions)) deadline=$(($(date +%s) + WAIT))
	while led=$(leaders) && [[ $led -lt $want && $(date +%s) -lt $deadline ]]; do sleep 1; done
	echo "t=$(($(date +%s) - start))s: topic idle$t created, $led of $want partitions led"
done
sleep 10
echo "leaders before the window: $(leaders)"
cpu() { awk '{print $14 + $15}' "/proc/$(cat "$DIR/node$1.pid")/stat"; }
declare -A before
for n in 1 2 3; do before[$n]=$(cpu "$n"); done
sleep 30
for n in 1 2 3; do
	rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/$(cat "$DIR/node$n.pid")/status")
	echo "node $n: $(((($(cpu "$n") - before[$n]) * 100 / $(getconf CLK_TCK)) / 30))% of a core, RSS $rss MB"
done
echo "leaders after the window: $(leaders)"
