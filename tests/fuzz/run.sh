#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Run mm's libFuzzer targets, built beforehand (README.md): for each
# fuzz_* in <build>/fuzz, replay its corpus (tests/fuzz/corpus/<target>,
# crash regressions included), then fuzz it for the given time on a copy of
# that corpus. Prints each target's executions and rate; exits 1 if any
# input crashed, timed out or leaked, keeping it in the crashes directory
# it names. Builds nothing.
#
#   tests/fuzz/run.sh [-b BUILD] [-t SECONDS] [-o OUT] [TARGET...]
#   tests/fuzz/run.sh --long 600 [...]
#
# -b  build directory (default: build-fuzz at the top of the tree)
# -t  seconds of fuzzing per target (default 20); --long SECONDS is the
#     same, for a longer run
# -o  where the work corpora and crashes go (default: <build>/fuzz-out)
# TARGET  only these targets (default: every fuzz_* found)
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=$top/build-fuzz
secs=20
out=

usage() {
	sed -n '3,17s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	-b) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
	-t|--long) [ $# -ge 2 ] || usage; secs=$2; shift 2 ;;
	-o) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
	-h|--help) usage ;;
	-*) echo "run.sh: unknown option $1" >&2; usage ;;
	*) break ;;
	esac
done
case $secs in
''|*[!0-9]*) echo "run.sh: seconds must be a number: $secs" >&2; exit 2 ;;
esac
bindir=$build/fuzz
[ -n "$out" ] || out=$build/fuzz-out
if [ $# -eq 0 ]; then
	set -- $(cd "$bindir" 2>/dev/null && ls fuzz_* 2>/dev/null)
fi
if [ $# -eq 0 ]; then
	echo "run.sh: no fuzz_* targets in $bindir (configure with" \
	    "CC=clang -DMM_FUZZ=ON and build the mm_fuzz target)" >&2
	exit 2
fi
crashes=$out/crashes
mkdir -p "$crashes" "$out/corpus" "$out/log" || exit 2

failed=0
total=0
for t in "$@"; do
	bin=$bindir/$t
	seeds=$here/corpus/$t
	log=$out/log/$t.log
	if [ ! -x "$bin" ]; then
		echo "$t: no such target in $bindir" >&2
		failed=1
		continue
	fi
	if ! ls "$seeds"/* >/dev/null 2>&1; then
		echo "$t: no corpus in $seeds" >&2
		failed=1
		continue
	fi
	# Replay: every seed and regression input, once each.
	if ! "$bin" -artifact_prefix="$crashes/$t-" "$seeds"/* \
	    >"$log" 2>&1; then
		echo "$t: FAILED replaying its corpus; see $log, input in" \
		    "$crashes/"
		failed=1
		continue
	fi
	work=$out/corpus/$t
	rm -rf "$work"
	mkdir -p "$work"
	cp "$seeds"/* "$work"/
	"$bin" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
	    -artifact_prefix="$crashes/$t-" "$work" >>"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)
	runs=${runs:-0}
	[ -n "$took" ] && [ "$took" -gt 0 ] || took=$secs
	[ "$took" -gt 0 ] || took=1
	total=$((total + runs))
	files=$(ls "$work" | wc -l)
	if [ $rc -ne 0 ]; then
		echo "$t: FAILED after $runs runs: see $log; crashing input" \
		    "in $crashes/"
		grep -m 3 -E 'ERROR: |invariant broken|Test unit written' \
		    "$log" | sed 's/^/    /'
		failed=1
	else
		echo "$t: $runs runs in ${took} s ($((runs / took))/s)," \
		    "corpus $(ls "$seeds" | wc -l) -> $files inputs, no crash"
	fi
done
echo "fuzz: $total runs in all; logs in $out/log"
if [ $failed -ne 0 ]; then
	echo "fuzz: FAILED; crashing inputs (if any) in $crashes"
	exit 1
fi
