#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A throwaway three-node RabbitMQ cluster on 127.0.0.1 for tests and
# benchmarks. Each node is a scripts/rabbitmq.sh node of its own (state
# directory, AMQP, management and distribution ports, node name); they
# share one Erlang cookie and are joined with rabbitmqctl join_cluster.
# The definitions are loaded once, through the first node.
set -euo pipefail

usage() {
	cat <<EOF
usage: ${0##*/} start|stop|stop-node N|start-node N|kill-node N|leader QUEUE|
       status|pids|env|ctl N ARGS...

  start         start the three nodes, join the second and third to the
                first, wait until the cluster reports three running nodes
                (at most MM_CLUSTER_TIMEOUT seconds in all)
  stop          stop every node and delete the state directories
  stop-node N   stop node N (1-3) gracefully, keeping its data
  start-node N  start node N again and wait until it runs in the cluster
                with the other running nodes
  kill-node N   SIGKILL node N's beam.smp; its data stays for start-node
  leader QUEUE  print the number of the node leading quorum queue QUEUE
                (vhost mm)
  status        each node's state and the cluster's running nodes;
                exit 0 only when all three run in the cluster
  pids          the running nodes' beam.smp pids, comma-separated (for
                scheduler_broker -B)
  env           print "export ..." lines for the tests:
                MM_TEST_CLUSTER_URLS (the three AMQP URLs, comma-separated),
                MM_TEST_CLUSTER_URL1..3, MM_TEST_CLUSTER_CTL (this script)
                and the MM_CLUSTER_* below, so the CTL reaches this cluster
  ctl N ARGS    rabbitmqctl ARGS against node N

environment (defaults in brackets); node N (1-3) uses base + N - 1:
  MM_CLUSTER_PORT       base AMQP port [5681: 5681, 5682, 5683]
  MM_CLUSTER_MGMT_PORT  base management HTTP port [15681]
  MM_CLUSTER_DIST_PORT  base Erlang distribution port [AMQP base + 20000]
  MM_CLUSTER_DIR        state directory prefix: node N keeps its state in
                        <prefix>-N [/tmp/mm-rabbitmq-cluster]
  MM_CLUSTER_TIMEOUT    seconds "start" and "start-node" wait [180]
  MM_RABBITMQ_BIN       RabbitMQ's scripts [/usr/lib/rabbitmq/bin]
Node N is named mm-<its AMQP port>@localhost.
EOF
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
single=$script_dir/rabbitmq.sh

base_port=${MM_CLUSTER_PORT:-5681}
base_mgmt=${MM_CLUSTER_MGMT_PORT:-15681}
base_dist=${MM_CLUSTER_DIST_PORT:-$((base_port + 20000))}
prefix=${MM_CLUSTER_DIR:-/tmp/mm-rabbitmq-cluster}
timeout=${MM_CLUSTER_TIMEOUT:-180}
vhost=mm
nodes=(1 2 3)

say() { printf 'rabbitmq-cluster.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

for v in base_port base_mgmt base_dist timeout; do
	[[ ${!v} =~ ^[0-9]+$ ]] || die "$v \"${!v}\" is not a number"
done
[[ -n $prefix && $prefix != / ]] || die "MM_CLUSTER_DIR \"$prefix\" refused"

check_n() {
	[[ ${1:-} =~ ^[123]$ ]] || die "node number \"${1:-}\" is not 1, 2 or 3"
}

port_of() { echo $((base_port + $1 - 1)); }
name_of() { echo "mm-$(port_of "$1")@localhost"; }
dir_of() { echo "$prefix-$1"; }

# scripts/rabbitmq.sh ARGS for node N. Its "start" provisions only with
# provision=yes: once, through the first node, after the joins.
provision=no
node_sh() {
	local n=$1
	shift
	MM_RABBITMQ_DIR=$(dir_of "$n") \
	MM_RABBITMQ_PORT=$(port_of "$n") \
	MM_RABBITMQ_MGMT_PORT=$((base_mgmt + n - 1)) \
	MM_RABBITMQ_DIST_PORT=$((base_dist + n - 1)) \
	MM_RABBITMQ_NODENAME=$(name_of "$n") \
	MM_RABBITMQ_TIMEOUT=$timeout \
	MM_RABBITMQ_PROVISION=$provision \
	MM_RABBITMQ_TLS_PORT='' \
	    "$single" "$@"
}

ctl() { local n=$1; shift; node_sh "$n" ctl "$@"; }

running() { node_sh "$1" status >/dev/null 2>&1; }

# The node names node N sees running in its cluster, one a line.
running_nodes() {
	ctl "$1" cluster_status --formatter json 2>/dev/null |
	    grep -o '"running_nodes":\[[^]]*\]' | grep -o '"[^"]*@[^"]*"' |
	    tr -d '"'
}

# Every node shares the first node's cookie (made on the first start),
# written before a node starts: the CLI reads it from the same home.
cookie() {
	local n f c
	f=$(dir_of 1)/home/.erlang.cookie
	if [[ ! -s $f ]]; then
		mkdir -p "$(dirname "$f")"
		chmod 700 "$(dirname "$f")"
		c=$(LC_ALL=C tr -dc '[:upper:]' </dev/urandom | head -c 20) ||
		    true
		(umask 077 && printf '%s' "$c" >"$f")
		chmod 400 "$f"
	fi
	c=$(cat "$f")
	for n in 2 3; do
		f=$(dir_of "$n")/home/.erlang.cookie
		[[ -s $f && $(cat "$f") == "$c" ]] && continue
		running "$n" && die "node $n runs with another Erlang cookie;" \
		    "run \"${0##*/} stop\" first"
		mkdir -p "$(dirname "$f")"
		chmod 700 "$(dirname "$f")"
		rm -f "$f"
		(umask 077 && printf '%s' "$c" >"$f")
		chmod 400 "$f"
	done
}

# Join node N to the first node unless it already runs in its cluster.
join() {
	local n=$1 first step out
	first=$(name_of 1)
	running_nodes "$n" | grep -qxF "$first" && return 0
	say "joining node $n to $first"
	# join_cluster logs harmless errors about connection tracking
	# tables while the node's app is stopped: show them only on failure.
	for step in stop_app "join_cluster $first" start_app; do
		# shellcheck disable=SC2086 # the step's words are separate
		if ! out=$(ctl "$n" $step 2>&1); then
			printf '%s\n' "$out" >&2
			die "node $n: $step failed"
		fi
	done
}

# Wait until the first running node sees all three running.
wait_cluster() {
	local deadline=$1 n seen
	while ((SECONDS < deadline)); do
		for n in "${nodes[@]}"; do
			running "$n" || continue
			seen=$(running_nodes "$n" | wc -l)
			((seen == 3)) && return 0
			break
		done
		sleep 1
	done
	die "the cluster did not report 3 running nodes within $timeout s"
}

# Wait until node N runs in one cluster with every other running node.
wait_member() {
	local n=$1 deadline=$2 m seen ok
	while ((SECONDS < deadline)); do
		seen=$(running_nodes "$n")
		ok=yes
		for m in "${nodes[@]}"; do
			if [[ $m == "$n" ]] || running "$m"; then
				grep -qxF "$(name_of "$m")" <<<"$seen" || ok=no
			fi
		done
		[[ $ok == yes ]] && return 0
		sleep 1
	done
	die "node $n did not run in the cluster within $timeout s"
}

cmd_start() {
	local t0=$SECONDS n pids=() failed=0
	cookie
	for n in "${nodes[@]}"; do
		node_sh "$n" start &
		pids+=($!)
	done
	for n in "${pids[@]}"; do
		wait "$n" || failed=1
	done
	((failed == 0)) || die "a node did not start"
	join 2
	join 3
	wait_cluster $((t0 + timeout))
	# The definitions are the cluster's: loaded once, through node 1.
	provision=yes node_sh 1 start
	say "ready: 3 running nodes in $((SECONDS - t0)) s:" \
	    "$(running_nodes 1 | tr '\n' ' ')"
}

cmd_stop() {
	local n ours=no
	# The nodes start together, so whichever launched epmd may stop
	# before the others and leave it: stop it after the last node if
	# one of ours launched it (rabbitmq.sh's mark) and no node is left.
	for n in "${nodes[@]}"; do
		[[ -e $(dir_of "$n")/epmd-started-by-us ]] && ours=yes
	done
	for n in 3 2 1; do
		node_sh "$n" stop || true
	done
	if [[ $ours == yes ]] && ! epmd -names 2>/dev/null | grep -q '^name '
	then
		epmd -kill >/dev/null 2>&1 || true
	fi
}

cmd_start_node() {
	local n=$1 t0=$SECONDS
	cookie
	node_sh "$n" start
	join "$n"
	wait_member "$n" $((t0 + timeout))
	say "node $n runs in the cluster after $((SECONDS - t0)) s"
}

cmd_stop_node() {
	local n=$1
	if ! running "$n"; then
		say "node $n is not running"
		return 0
	fi
	ctl "$n" shutdown >/dev/null || die "node $n: shutdown failed"
	say "node $n stopped (state kept in $(dir_of "$n"))"
}

cmd_leader() {
	local q=$1 n m leader
	for n in "${nodes[@]}"; do
		running "$n" || continue
		leader=$(ctl "$n" list_queues -p "$vhost" --no-table-headers \
		    name leader 2>/dev/null | awk -v q="$q" '$1 == q { print $2 }')
		[[ -n $leader ]] || die "no quorum queue \"$q\" with a leader" \
		    "in vhost $vhost"
		for m in "${nodes[@]}"; do
			if [[ $leader == "$(name_of "$m")" ]]; then
				echo "$m"
				return 0
			fi
		done
		die "queue \"$q\" is led by $leader, not one of our nodes"
	done
	die "no node runs"
}

cmd_status() {
	local n rc=0 seen=""
	for n in "${nodes[@]}"; do
		printf 'node %s: ' "$n"
		node_sh "$n" status || rc=3
		if [[ -z $seen ]] && running "$n"; then
			seen=$(running_nodes "$n" | tr '\n' ' ')
		fi
	done
	echo "running in the cluster: ${seen:-none}"
	[[ $(wc -w <<<"$seen") == 3 ]] || rc=3
	return $rc
}

cmd_pids() {
	local n line pids=()
	for n in "${nodes[@]}"; do
		line=$(node_sh "$n" status 2>/dev/null) || continue
		[[ $line =~ \ pid\ ([0-9]+)\  ]] && pids+=("${BASH_REMATCH[1]}")
	done
	((${#pids[@]} > 0)) || die "no node runs"
	(IFS=,; echo "${pids[*]}")
}

url_of() { echo "amqp://guest:guest@127.0.0.1:$(port_of "$1")/$vhost"; }

cmd_env() {
	cat <<EOF
export MM_TEST_CLUSTER_URLS=$(url_of 1),$(url_of 2),$(url_of 3)
export MM_TEST_CLUSTER_URL1=$(url_of 1)
export MM_TEST_CLUSTER_URL2=$(url_of 2)
export MM_TEST_CLUSTER_URL3=$(url_of 3)
export MM_TEST_CLUSTER_CTL=$script_dir/${0##*/}
export MM_CLUSTER_PORT=$base_port
export MM_CLUSTER_MGMT_PORT=$base_mgmt
export MM_CLUSTER_DIST_PORT=$base_dist
export MM_CLUSTER_DIR=$prefix
EOF
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
stop-node) check_n "${2:-}"; cmd_stop_node "$2" ;;
start-node) check_n "${2:-}"; cmd_start_node "$2" ;;
kill-node) check_n "${2:-}"; node_sh "$2" kill ;;
leader) [[ -n ${2:-} ]] || { usage >&2; exit 2; }; cmd_leader "$2" ;;
status) cmd_status ;;
pids) cmd_pids ;;
env) cmd_env ;;
ctl) check_n "${2:-}"; n=$2; shift 2; ctl "$n" "$@" ;;
-h | --help | help) usage ;;
*) usage >&2; exit 2 ;;
esac
