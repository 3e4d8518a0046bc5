#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build mm with sanitizers and run every test against a throwaway RabbitMQ,
# from a fresh Debian 12 machine (as root, it installs what is missing) or a
# developer's one. Extra arguments go to ctest, e.g. "scripts/test.sh -L unit".
set -euo pipefail

repo_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo_dir/scripts/deps.sh"
# What the tests need beyond the build: packaging, the footprint
# benchmark's neighbour, and real QEMU guests.
packages=(
	"${mm_build_packages[@]}"
	rpm dpkg-dev qemu-guest-agent lintian rpmlint openssl
	qemu-system-x86 busybox-static cpio xz-utils
	mmdebstrap systemd-container
	libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	prometheus jq
)

build_dir=${MM_BUILD_DIR:-$repo_dir/build}
broker=$repo_dir/scripts/rabbitmq.sh
cluster=$repo_dir/scripts/rabbitmq-cluster.sh
started=$SECONDS

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

port_free() {
	[[ -z $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

# The test broker's ports: the defaults unless something (a system
# rabbitmq-server that apt started, another test run) holds them, then the
# first free set above them. Explicit MM_RABBITMQ_* settings are kept.
pick_ports() {
	local amqp mgmt
	if [[ -n ${MM_RABBITMQ_PORT:-} ]]; then
		return 0
	fi
	for ((amqp = 5672; amqp < 5700; amqp++)); do
		mgmt=$((amqp + 10000))
		if port_free "$amqp" && port_free "$mgmt" &&
		    port_free $((amqp + 20000)); then
			if ((amqp != 5672)); then
				say "port 5672 or its companions are in use;" \
				    "the test broker uses $amqp"
			fi
			export MM_RABBITMQ_PORT=$amqp
			export MM_RABBITMQ_MGMT_PORT=${MM_RABBITMQ_MGMT_PORT:-$mgmt}
			return 0
		fi
	done
	die "no free ports for the test broker in 5672..5699"
}

# The cluster's three nodes: base, base+1, base+2 (and +10000, +20000),
# from 5681 unless taken, never the single broker's.
pick_cluster_ports() {
	local base p ok
	if [[ -n ${MM_CLUSTER_PORT:-} ]]; then
		return 0
	fi
	for ((base = 5681; base < 5697; base++)); do
		ok=1
		for ((p = base; p < base + 3; p++)); do
			if ((p == MM_RABBITMQ_PORT)) || ! port_free "$p" ||
			    ! port_free $((p + 10000)) ||
			    ! port_free $((p + 20000)); then
				ok=0
			fi
		done
		if ((ok)); then
			export MM_CLUSTER_PORT=$base
			export MM_CLUSTER_MGMT_PORT=$((base + 10000))
			return 0
		fi
	done
	die "no free ports for the test cluster in 5681..5699"
}

# shellcheck disable=SC2317 # called by the EXIT trap
stop_broker() {
	"$broker" stop >/dev/null 2>&1 || say "could not stop the test broker"
	if [[ -n ${cluster_pid:-} ]]; then
		kill "$cluster_pid" 2>/dev/null || true
		wait "$cluster_pid" 2>/dev/null || true
	fi
	if [[ -n ${cluster_log:-} ]]; then
		"$cluster" stop >/dev/null 2>&1 ||
		    say "could not stop the test cluster"
	fi
}

mm_install_missing "${packages[@]}" || die "cannot install packages"

# The ports first: the cluster (test_cluster) starts in the background
# while everything builds, it takes a minute or two to form. Only when
# the whole suite runs, or the arguments name it.
export MM_RABBITMQ_DIR=${MM_RABBITMQ_DIR:-/tmp/mm-test-rabbitmq}
"$broker" stop >/dev/null 2>&1 || true
pick_ports
trap stop_broker EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
if [[ ${MM_TEST_CLUSTER:-yes} != no && ($# -eq 0 || "$*" == *cluster*) ]]; then
	export MM_CLUSTER_DIR=${MM_CLUSTER_DIR:-/tmp/mm-test-cluster}
	"$cluster" stop >/dev/null 2>&1 || true
	pick_cluster_ports
	cluster_log=$MM_CLUSTER_DIR.log
	say "starting the test cluster in the background (log $cluster_log)"
	"$cluster" start >"$cluster_log" 2>&1 &
	cluster_pid=$!
fi

say "building in $build_dir (ASan, UBSan)"
cmake -S "$repo_dir" -B "$build_dir" -DMM_SANITIZE=ON
cmake --build "$build_dir" -j"$(nproc)"
# The configuration scripts/demo.sh and packages build (RelWithDebInfo, no
# sanitizers): gcc's -O2 warnings, errors under -Werror, differ from the
# sanitizer build's, and the README's run command must compile.
say "building in $build_dir-plain (RelWithDebInfo), as the demo does"
cmake -S "$repo_dir" -B "$build_dir-plain" >/dev/null
cmake --build "$build_dir-plain" -j"$(nproc)" >/dev/null
# The fuzz targets (tests/fuzz): clang, libFuzzer, ASan and UBSan.
fuzz=${MM_TEST_FUZZ_S:-15}
if ((fuzz > 0)) && [[ $# -eq 0 || "$*" == *fuzz* ]]; then
	say "building the fuzz targets in $build_dir-fuzz (clang, libFuzzer)"
	CC=clang cmake -S "$repo_dir" -B "$build_dir-fuzz" -DMM_FUZZ=ON \
	    -DMM_TESTS=OFF -DMM_BENCH=OFF -DMM_AGENT_STATIC=OFF >/dev/null
	cmake --build "$build_dir-fuzz" --target mm_fuzz -j"$(nproc)" >/dev/null
else
	fuzz=0
fi

# The broker has its own state directory (above), so one a developer
# started by hand with scripts/rabbitmq.sh is left alone; a previous run's
# leftovers are removed.
# An AMQPS listener too (test_tls, test_systemd), with certificates
# rabbitmq.sh makes; below the ephemeral ports (32768 and up), where an
# outgoing connection can take a port between the check and the bind.
export MM_RABBITMQ_TLS_PORT=${MM_RABBITMQ_TLS_PORT:-$((MM_RABBITMQ_PORT + 3000))}
port_free "$MM_RABBITMQ_TLS_PORT" ||
	die "the test broker's TLS port $MM_RABBITMQ_TLS_PORT is in use"
# test_systemd installs the packages of the plain build.
export MM_PACKAGE_BUILD_DIR=$build_dir-plain
"$broker" start
eval "$("$broker" env)"
if [[ -n ${cluster_pid:-} ]]; then
	if wait "$cluster_pid"; then
		eval "$("$cluster" env)"
		say "test cluster: $MM_TEST_CLUSTER_URLS"
	else
		cat "$cluster_log" >&2
		die "the test cluster did not start"
	fi
	cluster_pid=
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

status=0
ctest --test-dir "$build_dir" --output-on-failure "$@" || status=$?
if ((fuzz > 0)); then
	say "fuzzing each target for $fuzz s, then replaying its corpus"
	"$repo_dir/tests/fuzz/run.sh" -b "$build_dir-fuzz" -t "$fuzz" ||
	    status=$?
fi

if ((status == 0)); then
	say "PASS in $((SECONDS - started)) s (broker $MM_TEST_AMQP_URL)"
else
	say "FAIL: ctest exited with $status after $((SECONDS - started)) s"
fi
exit "$status"
