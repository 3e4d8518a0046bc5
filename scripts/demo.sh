#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The mm demo: on any Debian 12 machine, a local RabbitMQ, one scheduler and
# three simulated hosts (each with its collector and actuator) running a mix
# of ramping, static and idle VMs on less memory than they were promised.
# Shows "mmctl top" for about two minutes (or until Ctrl-C), stops
# everything cleanly (actuators release the VMs toward their maximum, as
# far as each host's free memory allows), and leaves
# per-VM logs and plots in demo-out/.
#
#   scripts/demo.sh [SECONDS]        default 120
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-120}
out=${MM_DEMO_OUT:-$repo/demo-out}
build=${MM_DEMO_BUILD:-$repo/build-demo}
run=$out/run
pids=()
names=()

say() { printf '\033[1mdemo:\033[0m %s\n' "$*" >&2; }

. "$repo/scripts/deps.sh"
mm_install_missing "${mm_build_packages[@]}" gnuplot-nox

say "building into $build"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DMM_TESTS=OFF -DMM_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
bin=$build/bin

rm -rf "$out"
mkdir -p "$run"
export MM_RABBITMQ_DIR=${MM_RABBITMQ_DIR:-/tmp/mm-demo-rabbitmq}

# stop_group ROLE: SIGTERM the processes of one role and wait for them.
stop_group() {
	local i
	for i in "${!names[@]}"; do
		[[ ${names[$i]} == *"$1" ]] || continue
		kill -TERM "${pids[$i]}" 2>/dev/null || true
	done
	for i in "${!names[@]}"; do
		[[ ${names[$i]} == *"$1" ]] || continue
		wait "${pids[$i]}" 2>/dev/null || true
	done
}

stop_all() {
	trap - EXIT INT TERM
	say "stopping: actuators release the VMs within each host's free memory"
	# Actuators first, while the hosts they release still run.
	stop_group actuator
	stop_group collector
	stop_group scheduler
	stop_group sim
	"$repo/scripts/rabbitmq.sh" stop >/dev/null 2>&1 || true
}
trap stop_all EXIT INT TERM

say "starting RabbitMQ"
"$repo/scripts/rabbitmq.sh" start
eval "$("$repo/scripts/rabbitmq.sh" env)"
url=$MM_TEST_AMQP_URL

start() {	# start NAME COMMAND...: in the background, log to run/NAME.log
	local name=$1
	shift
	"$@" >"$run/$name.log" 2>&1 &
	pids+=($!)
	names+=("$name")
}

cat >"$run/scheduler.conf" <<CONF
[scheduler]
id = demo
state_file = $run/scheduler.policy
[bus]
url = $url
[metrics]
listen = 127.0.0.1:9522
CONF
start scheduler "$bin/mm-scheduler" -d -c "$run/scheduler.conf"

# Three hosts, each promising its VMs more than it has.
declare -A vms=(
	[host-a]="-m web,4G,mono:256M:3G -m db,4G,static:2G -m cache,2G,idle"
	[host-b]="-m build,6G,mono:512M:5G -m api,3G,static:1G -m spare,2G,idle"
	[host-c]="-m batch,4G,mono:128M:3500M -m dev,3G,idle -m ci,3G,mono:256M:2G"
)
declare -A host_mem=([host-a]=8G [host-b]=8G [host-c]=7G)
declare -A metrics_port=([host-a-collector]=9530 [host-a-actuator]=9531
	[host-b-collector]=9532 [host-b-actuator]=9533
	[host-c-collector]=9534 [host-c-actuator]=9535)
for h in host-a host-b host-c; do
	d=$run/$h
	mkdir -p "$d"
	# shellcheck disable=SC2086
	start "$h-sim" "$bin/mm-sim" -s "$d/vm" -r "$d/root" \
	    -H "${host_mem[$h]}" ${vms[$h]}
	for role in collector actuator; do
		# A stop keeps the targets; the demo's actuators release.
		extra=
		[[ $role == actuator ]] && extra="release_on_stop = yes"
		cat >"$d/$role.conf" <<CONF
[$role]
$extra
host_id = $h
driver = sim
vm_dir = $d/vm
proc_root = $d/root/proc
sys_root = $d/root/sys
[bus]
url = $url
[metrics]
listen = 127.0.0.1:${metrics_port[$h-$role]}
CONF
	done
done
sleep 1
for h in host-a host-b host-c; do
	start "$h-collector" "$bin/mm-collector" -d -c "$run/$h/collector.conf"
	start "$h-actuator" "$bin/mm-actuator" -d -c "$run/$h/actuator.conf"
done
sleep 2

say "RabbitMQ management UI: http://127.0.0.1:${MM_RABBITMQ_MGMT_PORT:-15672} (guest / guest)"
say "Prometheus metrics (OpenMetrics; scrape them, or curl them):"
say "  scheduler  http://127.0.0.1:9522/metrics"
for h in host-a host-b host-c; do
	say "  $h    collector http://127.0.0.1:${metrics_port[$h-collector]}/metrics, actuator http://127.0.0.1:${metrics_port[$h-actuator]}/metrics"
done
say "  Grafana dashboard: deploy/grafana/mm-fleet.json (docs/metrics.md)"
say "following the fleet for $seconds s (Ctrl-C to stop early)"
MM_AMQP_URL=$url "$bin/mmctl" top --log "$out" --duration "${seconds}s" || true
MM_AMQP_URL=$url "$bin/mmctl" events --kind decision --wait 2s \
    >"$out/decisions-tail.txt" 2>&1 || true

stop_all
grep -h "stopping:" "$run"/*-actuator.log >&2 || true
say "plotting"
"$repo/scripts/plot-demo.sh" "$out" >/dev/null
say "done: per-VM logs (time target used free) and plots in $out/"
ls "$out"/*.png
