#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two mm-scheduler builds side by side through scheduler_broker: runs of A
# and B alternate, each against a broker started fresh for it (a run leaves
# queues behind that would load the next one), and the figures of every run
# are printed as one table. Prints figures; never passes or fails on them.
#
#   bench/scheduler_pairs.sh [-n pairs] [-H hosts] [-s seconds]
#       [-S shards] [-O] NAME=path/to/mm-scheduler[:classic][+scrape=S] ...
#
# ":classic" for a build from before quorum queues (scheduler_broker -q
# classic declares the hosts' queues as it does); -O is scheduler_broker's.
# "+scrape=S" turns on the scheduler's /metrics (127.0.0.1:9599) and
# fetches it every S seconds during the run, as Prometheus would; the
# "scrape" column is then the time the scheduler spent writing one.
#
# scheduler_broker is taken from $MM_BUILD_DIR/bin (default build-rel). The
# broker is scripts/rabbitmq.sh with MM_RABBITMQ_DIR (default
# /tmp/mm-bench-rabbitmq) and MM_RABBITMQ_PORT (default 5750).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
build_dir=${MM_BUILD_DIR:-$repo_dir/build-rel}
bench=$build_dir/bin/scheduler_broker
broker=$repo_dir/scripts/rabbitmq.sh
export MM_RABBITMQ_DIR=${MM_RABBITMQ_DIR:-/tmp/mm-bench-rabbitmq}
export MM_RABBITMQ_PORT=${MM_RABBITMQ_PORT:-5750}
export MM_RABBITMQ_MGMT_PORT=${MM_RABBITMQ_MGMT_PORT:-15750}
unset MM_RABBITMQ_TLS_PORT

pairs=5 hosts=1000 seconds=15 shards="" own=""
usage() {
	sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while getopts n:H:s:S:O opt; do
	case $opt in
	n) pairs=$OPTARG ;;
	H) hosts=$OPTARG ;;
	s) seconds=$OPTARG ;;
	S) shards="-S $OPTARG" ;;
	O) own=-O ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
names=() bins=() types=() scrapes=()
for arg in "$@"; do
	[[ $arg == *=* ]] || usage
	names+=("${arg%%=*}")
	bin=${arg#*=}
	scrape=
	if [[ $bin == *+scrape=* ]]; then
		scrape=${bin##*+scrape=}
		bin=${bin%+scrape=*}
	fi
	scrapes+=("$scrape")
	type=quorum
	if [[ $bin == *:classic ]]; then
		bin=${bin%:classic}
		type=classic
	fi
	bins+=("$bin")
	types+=("$type")
	[[ -x $bin ]] || { echo "not an executable: $bin" >&2; exit 1; }
done
((${#bins[@]} >= 1)) || usage
[[ -x $bench ]] || { echo "no $bench: build it (Release)" >&2; exit 1; }
for v in pairs hosts seconds; do
	[[ ${!v} =~ ^[0-9]+$ ]] || { echo "-$v: not a number" >&2; exit 2; }
done

trap '"$broker" stop >/dev/null 2>&1 || true' EXIT
out=$(mktemp -d)
printf '%-6s %-4s %8s %8s %10s %10s %10s %8s %8s %s\n' build run "sched%" \
    "broker%" "p50 ms" "p99 ms" "max ms" refused supers. "events [scrape]" 
for ((i = 1; i <= pairs; i++)); do
	for k in "${!bins[@]}"; do
		"$broker" stop >/dev/null 2>&1 || true
		"$broker" start >/dev/null 2>&1
		eval "$("$broker" env)"
		log=$out/${names[$k]}-$i.log
		extra=() scraper=
		rm -f "$out/scrape"
		if [[ -n ${scrapes[$k]} ]]; then
			extra=(-C $'[metrics]\nlisten = 127.0.0.1:9599')
			(while sleep "${scrapes[$k]}"; do
				curl -sf -o "$out/scrape.new" \
				    http://127.0.0.1:9599/metrics &&
				    mv "$out/scrape.new" "$out/scrape"
			done) &
			scraper=$!
		fi
		# shellcheck disable=SC2086 # shards and own are options
		"$bench" -b "${bins[$k]}" -H "$hosts" -s "$seconds" $shards \
		    $own -q "${types[$k]}" "${extra[@]}" \
		    -B "$(cat "$MM_RABBITMQ_DIR/rabbit.pid")" \
		    >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
		if [[ -n $scraper ]]; then
			kill "$scraper" 2>/dev/null || true
			wait "$scraper" 2>/dev/null || true
			# The last scrape says how many came before it and how
			# long writing them took.
			awk '/^mm_metrics_scrapes_total/ { n = $2 - 1 }
			/^mm_metrics_render_seconds_total/ { s = $2 }
			END { if (n > 0) printf "scrape: %.1f ms, %d before the last, ", 1000 * s / n, n }' \
			    "$out/scrape" 2>/dev/null >>"$log" || true
			[[ -f $out/scrape ]] && printf '%d KiB\n' \
			    $(($(wc -c <"$out/scrape") / 1024)) >>"$log"
		fi
		awk -v b="${names[$k]}" -v r="$i" '
		function num(s) { gsub(/[^0-9.]/, "", s); return s }
		/^  scheduler CPU:/ && cpu == "" { cpu = num($3) }
		/^  total scheduler CPU/ { cpu = $0; sub(/.*CPU[^0-9]*/, "", cpu); sub(/ .*/, "", cpu) }
		/^  broker CPU:/ { br = num($3) }
		/report published -> batch delivered: p50/ && p50 == "" {
			for (f = 1; f <= NF; f++) {
				if ($f == "p50") p50 = num($(f+1))
				if ($f == "p99") p99 = num($(f+1))
				if ($f == "max") mx = num($(f+1))
			}
		}
		/^  batches refused \(not sent\)/ { ref = num($5); sup = $7 }
		/^  events published/ { ev = $3 " (" num($4) " a report)" }
		/^scrape: / { sc = " [" $0 "]" }
		END { printf "%-6s %-4s %8s %8s %10s %10s %10s %8s %8s %s%s\n", b, r, cpu, br, p50, p99, mx, ref, sup, ev, sc }' "$log"
	done
done
echo "logs: $out"
