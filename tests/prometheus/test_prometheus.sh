#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A real Prometheus scrapes the daemons of a simulated fleet: two mm-sim
# hosts of two VMs each, their mm-collector and mm-actuator, and an
# mm-scheduler, all on the test broker with [metrics] listen on 127.0.0.1.
# Checks, as an operator would see them:
#   - promtool check metrics passes on every daemon's text output, and
#     OpenMetrics output ends with "# EOF";
#   - Prometheus (asking for OpenMetrics) scrapes every target without an
#     error;
#   - its HTTP API returns mm_vm_target_bytes and mm_vm_used_bytes for
#     every simulated VM and the scheduler's per-host series for both
#     hosts;
#   - mm_messages_refused_total rises after a malformed report is
#     published to the scheduler;
#   - every query of the Grafana dashboard (deploy/grafana) returns data.
# Usage: test_prometheus.sh <source dir> <build dir>; needs
# MM_TEST_AMQP_URL and MM_TEST_MGMT_URL (scripts/rabbitmq.sh env). Exit 77
# skips (no broker, no prometheus).
set -euo pipefail

src=${1:?usage: test_prometheus.sh <source dir> <build dir>}
build=${2:?usage: test_prometheus.sh <source dir> <build dir>}
bin=$build/bin
dashboard=$src/deploy/grafana/mm-fleet.json

if [[ -z ${MM_TEST_AMQP_URL:-} || -z ${MM_TEST_MGMT_URL:-} ]]; then
	echo "skipped: no test broker (MM_TEST_AMQP_URL, MM_TEST_MGMT_URL)" >&2
	exit 77
fi
for tool in prometheus promtool jq curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "skipped: $tool missing (apt-get install prometheus jq curl)" >&2
		exit 77
	fi
done

work=$(mktemp -d /tmp/mm-prometheus.XXXXXX)
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if ((fails > 0)); then
		for f in "$work"/*.log; do
			printf -- '--- %s (last lines)\n' "$f" >&2
			tail -n 15 "$f" >&2
		done
	fi
	rm -rf "$work"
}
fails=0
trap cleanup EXIT

fail() { printf 'FAIL: %s\n' "$*" >&2; fails=$((fails + 1)); }
ok() { printf 'ok: %s\n' "$*"; }
start() {	# start NAME COMMAND...: in the background, log to NAME.log
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=($!)
}
# The address a daemon logged for its endpoint (waits 10 s at most).
endpoint() {
	local i a
	for ((i = 0; i < 100; i++)); do
		a=$(sed -n 's|.*metrics at http://\([^/]*\)/metrics.*|\1|p' \
		    "$work/$1.log" | tail -n 1)
		if [[ -n $a ]]; then echo "$a"; return 0; fi
		sleep 0.1
	done
	echo "no metrics endpoint in $1.log" >&2
	return 1
}

run=pm$$
url=$MM_TEST_AMQP_URL
hosts=("$run-a" "$run-b")
declare -A addr

cat >"$work/scheduler.conf" <<CONF
[scheduler]
id = $run
state_file = $work/scheduler.policy
history_file = $work/scheduler.history
[bus]
url = $url
[metrics]
listen = 127.0.0.1:0
CONF
start scheduler "$bin/mm-scheduler" -d -c "$work/scheduler.conf"
for h in "${hosts[@]}"; do
	d=$work/$h
	mkdir -p "$d"
	start "$h-sim" "$bin/mm-sim" -s "$d/vm" -r "$d/root" -H 6G \
	    -m web,2G,static:1G -m db,1G,idle
	for role in collector actuator; do
		cat >"$d/$role.conf" <<CONF
[$role]
host_id = $h
driver = sim
vm_dir = $d/vm
proc_root = $d/root/proc
sys_root = $d/root/sys
rescan = 200ms
[bus]
url = $url
[metrics]
listen = 127.0.0.1:0
CONF
	done
done
sleep 1
for h in "${hosts[@]}"; do
	start "$h-collector" "$bin/mm-collector" -d -c "$work/$h/collector.conf"
	start "$h-actuator" "$bin/mm-actuator" -d -c "$work/$h/actuator.conf"
done
addr[scheduler]=$(endpoint scheduler)
for h in "${hosts[@]}"; do
	addr[$h-collector]=$(endpoint "$h-collector")
	addr[$h-actuator]=$(endpoint "$h-actuator")
done
sleep 3

# promtool on the text format, and the OpenMetrics form's end.
for d in "${!addr[@]}"; do
	out=$work/$d.metrics
	curl -sf "http://${addr[$d]}/metrics" >"$out" || fail "$d: GET /metrics"
	if lint=$(promtool check metrics <"$out" 2>&1); then
		ok "$d: promtool check metrics ($(grep -vc '^#' "$out") samples)"
	else
		fail "$d: promtool check metrics: $lint"
	fi
	last=$(curl -sf -H 'Accept: application/openmetrics-text; version=1.0.0' \
	    "http://${addr[$d]}/metrics" | tail -n 1)
	[[ $last == "# EOF" ]] || fail "$d: OpenMetrics does not end in # EOF"
done
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST \
    "http://${addr[scheduler]}/metrics")
[[ $code == 405 ]] || fail "POST /metrics answered $code, not 405"

# A Prometheus of the test's own, scraping every second.
port=19090
while ss -Hltn "sport = :$port" | grep -q .; do port=$((port + 1)); done
prom=http://127.0.0.1:$port
{
	printf 'global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n'
	printf 'scrape_configs:\n'
	for role in collector actuator; do
		printf '  - job_name: mm-%s\n    static_configs:\n' "$role"
		printf '      - targets: [%s, %s]\n' "${addr[${hosts[0]}-$role]}" \
		    "${addr[${hosts[1]}-$role]}"
	done
	printf '  - job_name: mm-scheduler\n    static_configs:\n'
	printf '      - targets: [%s]\n' "${addr[scheduler]}"
} >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml" >/dev/null ||
    fail "promtool check config"
start prometheus prometheus --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/tsdb" --web.listen-address="127.0.0.1:$port"

# query EXPR: the result vector of an instant query, as JSON.
query() {
	curl -sf --get "$prom/api/v1/query" --data-urlencode "query=$1" |
	    jq -c '.data.result'
}
# wait_for WHAT EXPR JQ-TEST: until the test holds on the result (30 s).
wait_for() {
	local what=$1 expr=$2 test=$3 i r
	for ((i = 0; i < 60; i++)); do
		r=$(query "$expr" 2>/dev/null || echo '[]')
		if jq -e "$test" >/dev/null 2>&1 <<<"$r"; then
			ok "$what"
			return 0
		fi
		sleep 0.5
	done
	fail "$what: $expr gave $r"
	return 1
}

wait_for "every target scraped" 'up' \
    '[.[] | select(.value[1] == "1")] | length == 5' || true
targets=$(curl -sf "$prom/api/v1/targets" | jq -c \
    '[.data.activeTargets[] | select(.health != "up" or .lastError != "")
      | {scrapeUrl, health, lastError}]')
[[ $targets == "[]" ]] && ok "no scrape errors (OpenMetrics parsed)" ||
    fail "targets with errors: $targets"

vms='["'${hosts[0]}'/db","'${hosts[0]}'/web","'${hosts[1]}'/db","'${hosts[1]}'/web"]'
for metric in mm_vm_target_bytes mm_vm_used_bytes mm_vm_actual_bytes; do
	wait_for "$metric for every VM" "$metric{host=~\"$run-.*\"}" \
	    "[.[].metric | .host + \"/\" + .vm] | sort == $vms"
done
wait_for "targets within the VMs' maximum" \
    "mm_vm_target_bytes{host=~\"$run-.*\"} > on(host, vm) mm_vm_max_bytes" \
    'length == 0'
wait_for "the scheduler's per-host series" \
    "mm_scheduler_host_vms{host=~\"$run-.*\"}" \
    '[.[] | select(.value[1] == "2")] | length == 2'
wait_for "decisions timed" 'mm_scheduler_decision_seconds_count' \
    '.[0].value[1] | tonumber > 0'

# A malformed report: the dispatcher dead-letters it and counts it.
refused='mm_messages_refused_total{job="mm-scheduler",queue="stats",reason="undecodable"}'
before=$(query "$refused" | jq -r '.[0].value[1] // "0"')
body='{"properties":{"content_type":"application/x-protobuf","type":"mm.v1.HostReport"},"routing_key":"host.'${hosts[0]}'","payload":"//////8=","payload_encoding":"base64"}'
routed=$(curl -sf -u guest:guest -H 'content-type: application/json' \
    -d "$body" "$MM_TEST_MGMT_URL/api/exchanges/mm/mm.stats/publish" |
    jq -r .routed)
[[ $routed == true ]] || fail "the malformed report was not routed"
wait_for "a malformed report counted ($before before)" "$refused" \
    ".[0].value[1] | tonumber > $before"

# Every query of the dashboard returns data, for one host and all VMs.
if [[ -f $dashboard ]]; then
	jq -e '.title and .uid and (.panels | length > 0) and
	    all(.panels[]; .type and .gridPos and .title)' "$dashboard" \
	    >/dev/null && ok "dashboard: title, uid and panels" ||
	    fail "dashboard: missing title, uid or panel fields"
	n=0
	while IFS= read -r expr; do
		n=$((n + 1))
		e=${expr//\$__rate_interval/10s}
		e=${e//\$__interval/5s}
		e=${e//\$host/${hosts[0]}}
		e=${e//\$vm/.*}
		wait_for "dashboard query $n: $expr" "$e" 'length > 0' || true
	done < <(jq -r '.panels[] | .targets[]?.expr' "$dashboard")
	((n > 0)) || fail "dashboard: no queries"
else
	fail "no dashboard at $dashboard"
fi

if ((fails > 0)); then
	echo "test_prometheus: $fails failed" >&2
	exit 1
fi
echo "test_prometheus: all passed"
