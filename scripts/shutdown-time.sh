#!/usr/bin/env bash
# shutdown-time.sh TOPICS: how long a node takes to exit after SIGTERM.
# Starts three nodes with scripts/cluster.sh in a fresh DIR (default
# /tmp/weir-shutdown; the ports are cluster.sh's, so not while `make
# cluster` runs), creates TOPICS topics of 100 partitions with 3 replicas,
# waits 15 s, sends SIGTERM to node 1 and prints the time until it has
# exited, then stops the other nodes.
#
#   make build && scripts/shutdown-time.sh 3     # 300 replicas per node
set -euo pipefail

export WEIR=${WEIR:-bin/weir}
export DIR=${DIR:-/tmp/weir-shutdown}
[[ $# -eq 1 ]] || { echo "usage: $0 TOPICS" >&2; exit 2; }
here=$(dirname "$0")

"$here/cluster.sh" stop >/dev/null 2>&1 || true
rm -rf "$DIR"
"$here/cluster.sh" start >/dev/null
trap '"$here/cluster.sh" stop >/dev/null' EXIT
for t in $(seq 1 "$1"); do
	"$WEIR" --brokers 127.0.0.1:7520 topic create "idle$t" --partitions 100 --replicas 3 >/dev/null
done
sleep 15
pid=$(cat "$DIR/node1.pid")
start=$(date +%s.%N)
kill -TERM "$pid"
# A node not yet reaped by its parent is a zombie, which kill -0 still finds.
while kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]; do sleep 0.05; done
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
echo "$(($1 * 100)) replicas per node: node 1 exited $took s after SIGTERM"
