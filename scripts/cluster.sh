#!/usr/bin/env bash
# cluster.sh start|stop|status: three weir nodes on 127.0.0.1 as separate
# processes, each with its own ports and data directory under DIR
# (default ./weir-cluster). Node N listens for clients on 75N0, for peers on
# 75N1 and for HTTP on 75N2 (N = 2, 3, 4 for nodes 1, 2, 3). Every node gets
# the same --join list (all three) and --bootstrap-expect 3: on the first
# start they find each other and node 1 bootstraps the cluster; later, a
# node started again (even with its data dir wiped) rejoins it. Logs go to
# DIR/nodeN.log.
#
#   scripts/cluster.sh start     # after make build
#   bin/weir --brokers 127.0.0.1:7520 topic create t --partitions 6 --replicas 3
#   scripts/cluster.sh stop
set -euo pipefail

WEIR=${WEIR:-bin/weir}
DIR=${DIR:-./weir-cluster}
nodes=(1 2 3)

port() { echo $((7500 + 10 * ($1 + 1) + $2)); } # node, 0 client / 1 peer / 2 http

# running: node $1's process is alive (a killed node not yet reaped by its
# parent is a zombie, which kill -0 still finds).
running() {
	local pidfile="$DIR/node$1.pid" pid
	[[ -f $pidfile ]] || return 1
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null && [[ $(ps -o stat= -p "$pid" 2>/dev/null) != Z* ]]
}

start() {
	mkdir -p "$DIR"
	local seeds="" n
	for n in "${nodes[@]}"; do seeds+="${seeds:+,}127.0.0.1:$(port "$n" 0)"; done
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		if running "$n"; then
			echo "node $n already running (pid $(cat "$pidfile"))"
			continue
		fi
		logstart=$( (wc -l <"$DIR/node$n.log") 2>/dev/null || echo 0)
		echo "$logstart" >"$DIR/node$n.logstart"
		args=(serve --node-id "$n" --data-dir "$DIR/node$n"
			--listen "127.0.0.1:$(port "$n" 0)" --peer-listen "127.0.0.1:$(port "$n" 1)"
			--http-listen "127.0.0.1:$(port "$n" 2)" --join "$seeds" --bootstrap-expect "${#nodes[@]}")
		# Its own session: a Ctrl-C in this terminal does not reach it.
		setsid "$WEIR" "${args[@]}" >>"$DIR/node$n.log" 2>&1 &
		echo $! >"$pidfile"
		echo "node $n: pid $!, clients on 127.0.0.1:$(port "$n" 0), log $DIR/node$n.log"
	done
	# Wait until every node serves (its log says so, after this start).
	for n in "${nodes[@]}"; do
		from=$(($(cat "$DIR/node$n.logstart" 2>/dev/null || echo 0) + 1))
		for _ in $(seq 1 300); do
			# Not "tail | grep -q": grep exits at the first match, tail then
			# dies of SIGPIPE, and under pipefail the test fails.
			grep -q "serving on" <(tail -n +"$from" "$DIR/node$n.log" 2>/dev/null) && break
			running "$n" || { echo "node $n exited; see $DIR/node$n.log" >&2; exit 1; }
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
	if [[ $up -lt ${#nodes[@]} ]]; then
		echo "only $up of ${#nodes[@]} nodes answer; see $DIR/node*.log" >&2
		exit 1
	fi
	echo "cluster up: --brokers 127.0.0.1:$(port 1 0),127.0.0.1:$(port 2 0),127.0.0.1:$(port 3 0)"
}

stop() {
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		[[ -f $pidfile ]] || continue
		pid=$(cat "$pidfile")
		if running "$n"; then
			kill -TERM "$pid"
			for _ in $(seq 1 100); do running "$n" || break; sleep 0.1; done
			running "$n" && kill -KILL "$pid"
			echo "node $n stopped"
		fi
		rm -f "$pidfile" "$DIR/node$n.logstart"
	done
}

status() {
	for n in "${nodes[@]}"; do
		pidfile="$DIR/node$n.pid"
		if running "$n"; then
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
