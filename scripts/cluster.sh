#!/usr/bin/env bash
# cluster.sh start|stop|status: three weir nodes on 127.0.0.1 as separate
# processes, each with its own ports and data directory under DIR
# (default ./weir-cluster). Node N listens for clients on 75N0, for peers on
# 75N1 and for HTTP on 75N2 (N = 2, 3, 4 for nodes 1, 2, 3); node 1 starts
# the cluster and the others join it. Logs go to DIR/nodeN.log.
#
#   scripts/cluster.sh start     # after make build
#   bin/weir --brokers 127.0.0.1:7520 topic create t --partitions 6 --replicas 3
#   scripts/cluster.sh stop
set -euo pipefail

WEIR=${WEIR:-bin/weir}
DIR=${DIR:-./weir-cluster}
nodes=(1 2 3)

port() { echo $((7500 + 10 * ($1 + 1) + $2)); } # node, 0 client / 1 peer / 2 http

start() {
	mkdir -p "$DIR"
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "node $n already running (pid $(cat "$pidfile"))"
			continue
		fi
		args=(serve --node-id "$n" --data-dir "$DIR/node$n"
			--listen "127.0.0.1:$(port "$n" 0)" --peer-listen "127.0.0.1:$(port "$n" 1)"
			--http-listen "127.0.0.1:$(port "$n" 2)")
		if [[ $n != 1 ]]; then
			args+=(--join "127.0.0.1:$(port 1 0)")
		fi
		# Its own session: a Ctrl-C in this terminal does not reach it.
		setsid "$WEIR" "${args[@]}" >>"$DIR/node$n.log" 2>&1 &
		echo $! >"$pidfile"
		echo "node $n: pid $!, clients on 127.0.0.1:$(port "$n" 0), log $DIR/node$n.log"
	done
	# Wait until every node serves (its first log line says so).
	for n in "${nodes[@]}"; do
		for _ in $(seq 1 300); do
			grep -q "serving on" "$DIR/node$n.log" 2>/dev/null && break
			kill -0 "$(cat "$DIR/node$n.pid")" 2>/dev/null || { echo "node $n exited; see $DIR/node$n.log" >&2; exit 1; }
			sleep 0.1
		done
	done
	# And until the cluster knows all three, and each answers.
	brokers="127.0.0.1:$(port 1 0),127.0.0.1:$(port 2 0),127.0.0.1:$(port 3 0)"
	for _ in $(seq 1 300); do
		up=$("$WEIR" --brokers "$brokers" cluster status --json 2>/dev/null | grep -o '"Alive":true' | wc -l || true)
		[[ $up -ge ${#nodes[@]} ]] && break
		sleep 0.1
	done
	echo "cluster up: --brokers 127.0.0.1:$(port 1 0),127.0.0.1:$(port 2 0),127.0.0.1:$(port 3 0)"
}

stop() {
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		[[ -f $pidfile ]] || continue
		pid=$(cat "$pidfile")
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid"
			for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
			echo "node $n stopped"
		fi
		rm -f "$pidfile"
	done
}

status() {
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "node $n: running (pid $(cat "$pidfile")), clients on 127.0.0.1:$(port "$n" 0)"
		else
			echo "node $n: stopped"
		fi
	done
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
