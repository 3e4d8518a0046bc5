#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Write the seed corpora of the fuzz targets: corpus/<target>/seed-*, small
# valid and near-valid inputs (README.md says each target's format). Seeds
# of protobuf messages are encoded from the text below with protoc-c
# --encode. Crash inputs kept as regressions (corpus/<target>/crash-*) are
# not touched. Run from anywhere; rerun after changing a seed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
proto=$here/../../proto

# seed <target> <name>: stdin to corpus/<target>/seed-<name>
seed() {
	mkdir -p "$corpus/$1"
	cat >"$corpus/$1/seed-$2"
}

# encode <message> (text format on stdin, binary on stdout)
encode() {
	protoc-c --encode="mm.v1.$1" -I "$proto" "$proto"/mm/v1/*.proto
}

# byte <n>: one raw byte
byte() {
	printf "\\$(printf %03o "$1")"
}

# le32 <n>, le64 <n>: four and eight bytes, little endian (the history
# file is in this machine's byte order: x86 and arm64 are little endian)
le32() {
	byte $(($1 & 255)); byte $(($1 >> 8 & 255))
	byte $(($1 >> 16 & 255)); byte $(($1 >> 24 & 255))
}
le64() {
	le32 $(($1 & 4294967295)); le32 $(($1 >> 32))
}

# be32 <n>: four bytes, big endian
be32() {
	byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255))
	byte $(($1 >> 8 & 255)); byte $(($1 & 255))
}

rm -f "$corpus"/*/seed-*

guest='vm_id: "web-1" vm_name: "web 1" time_ms: 1700000000000 source: STATS_SOURCE_AGENT agent_seq: 7
meminfo { total_kib: 4194304 free_kib: 1048576 available_kib: 2097152 cached_kib: 524288 swap_total_kib: 0 swap_free_kib: 0 }
vmstat { major_faults: 12 swap_in_pages: 0 swap_out_pages: 0 refault_pages: 3 oom_kills: 0 balloon_pages: 1024 }
psi { some_avg10_pct: 1.5 some_avg60_pct: 0.75 some_avg300_pct: 0.1 full_avg10_pct: 0 some_total_us: 12345 full_total_us: 10 }
balloon_target_kib: 4194304 balloon_actual_kib: 4194304 max_kib: 8388608'

# ---- fuzz_msg: one byte of enum msg_type, then the body ----
msg() {	# msg <type index> <name> <message> (text on stdin)
	{ byte "$1"; encode "$3"; } | seed fuzz_msg "$2"
}
echo "$guest" | msg 0 guest GuestStats
echo "$guest flags: SANITIZER_FLAG_CLAMPED flags: SANITIZER_FLAG_HOST_VIEW stale: true" |
	msg 0 guest-flags GuestStats
msg 1 report HostReport <<EOF
host_id: "host-1" seq: 42 time_ms: 1700000000000 interval_ms: 1000 hypervisor: HYPERVISOR_KVM
host { meminfo { total_kib: 67108864 free_kib: 8388608 available_kib: 16777216 }
  ksm { full_scans: 3 shared_pages: 100 sharing_pages: 400 settings { run: KSM_RUN_MERGE pages_to_scan: 100 sleep_ms: 20 } }
  numa_nodes { node: 0 total_kib: 33554432 free_kib: 4194304 } numa_nodes { node: 1 total_kib: 33554432 free_kib: 4194304 }
  vm_numa { vm_id: "web-1" nodes { node: 0 pages: 1000 } vcpu_nodes: 0 } }
guests { $guest }
EOF
msg 2 batch CommandBatch <<EOF
host_id: "host-1" scheduler_id: "sched-a" seq: 9 issued_ms: 1700000000000 expires_ms: 1700000010000 policy_version: 3 report_seq: 42
commands { reason: "pressure" balloon { vm_id: "web-1" target_kib: 3145728 } }
commands { ksm { settings { run: KSM_RUN_MERGE pages_to_scan: 200 sleep_ms: 50 merge_across_nodes: false } } }
commands { numa { vm_id: "web-1" from_nodes: 1 to_node: 0 max_pages: 4096 } }
EOF
msg 3 result ActionResult <<EOF
host_id: "host-1" batch_seq: 9 time_ms: 1700000000500 scheduler_id: "sched-a" policy_version: 3
results { index: 0 status: RESULT_STATUS_OK vm_id: "web-1" elapsed_ms: 3 balloon_target_kib: 3145728 balloon_actual_kib: 3145728 }
results { index: 1 status: RESULT_STATUS_FAILED error: "ksm: EACCES" }
EOF
msg 3 result-sync ActionResult <<EOF
host_id: "host-1" batch_seq: 0 time_ms: 1700000000500 sync: true
EOF
msg 4 policy Policy <<EOF
version: 7 name: "fleet" mode: POLICY_MODE_ENFORCE host_reserve_kib: 2097152 algorithm: "pressure" created_ms: 1700000000000 author: "op@admin"
defaults { min_kib: 524288 weight: 100 headroom_kib: 262144 headroom_pct: 10 }
rules { pattern: "db-*" limits { min_kib: 4194304 weight: 300 } }
rules { pattern: "appliance-*" limits { unmanaged: true } }
ksm { enable: true cpu_budget_pct: 10 start_available_pct: 20 stop_available_pct: 40 min_pages_to_scan: 100 max_pages_to_scan: 1000 sleep_ms: 20 }
numa { enable: true min_interval_s: 300 round_pages: 262144 node_reserve_kib: 262144 }
params { name: "hold_ms" value: 30000 }
EOF
msg 4 policy-reset Policy <<EOF
version: 1 mode: POLICY_MODE_SHADOW algorithm: "static" reset: true
EOF
msg 5 event-decision Event <<EOF
kind: EVENT_KIND_DECISION host_id: "host-1" time_ms: 1700000000000 source_id: "sched-a" policy_version: 7
vms { vm_id: "web-1" reason: "grow" metrics { name: "psi_some_avg10" value: 1.5 unit: "pct" } balloon_target_kib: 4194304 }
vms { vm_id: "db-1" reason: "shrink" balloon_target_kib: 2097152 balloon_actual_kib: 3145728 }
EOF
msg 5 event-one Event <<EOF
kind: EVENT_KIND_DECISION host_id: "host-1" vm_id: "web-1" time_ms: 1700000000000 reason: "grow" balloon_target_kib: 4194304
EOF
msg 5 event-result Event <<EOF
kind: EVENT_KIND_RESULT host_id: "host-1" time_ms: 1700000000000 batch_seq: 9
result { host_id: "host-1" batch_seq: 9 time_ms: 1700000000500 results { index: 0 status: RESULT_STATUS_CLAMPED error: "above max" } }
EOF
msg 6 status-request StatusRequest <<EOF
host_ids: "host-1" host_ids: "host-2" guests: true
EOF
msg 7 status-reply StatusReply <<EOF
scheduler_id: "sched-a" time_ms: 1700000000000 policy_version: 7 policy_name: "fleet" policy_mode: POLICY_MODE_ENFORCE
policy { version: 7 mode: POLICY_MODE_ENFORCE }
hosts { host_id: "host-1" report_ms: 1700000000000 report_seq: 42 guest_count: 1 total_kib: 67108864 stale: false
  guests { vm_id: "web-1" balloon_target_kib: 4194304 min_kib: 524288 max_kib: 8388608 psi_some_avg10_pct: 1.5 reason: "grow" } }
counters { name: "refused" value: 0 unit: "count" }
EOF
{ byte 8; echo "$guest" | encode GuestStats; } | seed fuzz_msg unknown-type
{ byte 0; echo "$guest" | encode GuestStats | head -c 60; } |
	seed fuzz_msg guest-truncated

# ---- fuzz_agent_frames: the agent's channel, frames of be32 length ----
echo "$guest" | encode GuestStats >"$corpus/.frame"
n=$(wc -c <"$corpus/.frame")
{ be32 "$n"; cat "$corpus/.frame"; } | seed fuzz_agent_frames one
{ be32 "$n"; cat "$corpus/.frame"; be32 "$n"; cat "$corpus/.frame"; } |
	seed fuzz_agent_frames two
{ be32 "$n"; cat "$corpus/.frame"; be32 "$n"; head -c 10 "$corpus/.frame"; } |
	seed fuzz_agent_frames partial
{ be32 0; be32 "$n"; cat "$corpus/.frame"; } | seed fuzz_agent_frames empty-first
{ be32 16777216; cat "$corpus/.frame"; } | seed fuzz_agent_frames too-big
echo 'vm_id: "web-1" meminfo { total_kib: 4 free_kib: 8 }' | encode GuestStats >"$corpus/.frame"
n=$(wc -c <"$corpus/.frame")
{ be32 "$n"; cat "$corpus/.frame"; } | seed fuzz_agent_frames free-above-total
rm -f "$corpus/.frame"

# ---- fuzz_qmp: QEMU's side of the monitor; the driver's ids are 1
# (qmp_capabilities), 2 (query-memory-size-summary), 3 (qom-get
# deflate-on-oom), 4 (query-balloon), 5 (qom-set stats polling) ----
greet='{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}'
seed fuzz_qmp session <<EOF
$greet
{"return": {}, "id": 1}
{"return": {"base-memory": 4294967296, "plugged-memory": 0}, "id": 2}
{"return": true, "id": 3}
{"return": {"actual": 4294967296}, "id": 4}
{"return": {}, "id": 5}
{"timestamp": {"seconds": 1700000000, "microseconds": 1}, "event": "BALLOON_CHANGE", "data": {"actual": 3221225472}}
EOF
seed fuzz_qmp errors <<EOF
$greet
{"return": {}, "id": 1}
{"error": {"class": "GenericError", "desc": "no balloon"}, "id": 2}
{"return": {"actual": 18446744073709551615}, "id": 4}
{"return": {}, "id": 99}
not json
[1, 2]
EOF
seed fuzz_qmp guest-stats <<EOF
$greet
{"return": {}, "id": 1}
{"return": {"stats": {"stat-total-memory": 4294967296, "stat-free-memory": 1073741824, "stat-available-memory": 2147483648, "stat-disk-caches": 536870912, "stat-major-faults": 18446744073709551615, "stat-swap-in": 0, "stat-swap-out": 4096}, "last-update": 1700000000}, "id": 6}
EOF
{ echo "$greet"; head -c 5000 /dev/zero | tr '\0' 'x'; echo; } | seed fuzz_qmp long-line

# ---- fuzz_xenstore: key NUL value NUL ... below data/mm/ ----
xs() {	# xs <name> key value key value ...
	name=$1; shift
	while [ $# -ge 2 ]; do printf '%s\0%s\0' "$1" "$2"; shift 2; done |
		seed fuzz_xenstore "$name"
}
xs sample agent_seq 7 time_ms 1700000000000 meminfo/total_kib 4194304 \
	meminfo/free_kib 1048576 meminfo/available_kib 2097152 \
	vmstat/major_faults 12 vmstat/swap_in_pages 0 psi/some_avg10_pct 1.50 \
	psi/full_avg300_pct 0.00 psi/some_total_us 12345
xs bad-number agent_seq 7 meminfo/total_kib 4194304kB
xs minus agent_seq 8 psi/some_avg10_pct -1 vmstat/oom_kills 18446744073709551616
xs no-agent meminfo/total_kib 4194304
xs cold-reclaim agent_seq 9 meminfo/total_kib 4194304 \
	cold/0/idle_ms 60000 cold/0/anon_kib 1024 cold/0/file_kib 2048 \
	cold/1/idle_ms 120000 cold/1/anon_kib 0 cold/1/file_kib 512 \
	reclaim/seq 3 reclaim/reclaimed_kib 65536 reclaim/state 2 \
	reclaim/stall_pct 1.25
xs cold-gap agent_seq 9 cold/0/idle_ms 1 cold/2/idle_ms 2 cold/4/idle_ms 3 \
	reclaim/state 9

# ---- fuzz_policyfile: mm-policy(5) ----
seed fuzz_policyfile example <"$here/../../deploy/policy.example"
seed fuzz_policyfile small <<EOF
[policy]
version = 3
mode = shadow
algorithm = static
[defaults]
min = 1G
max = 8G
EOF
seed fuzz_policyfile bad-range <<EOF
[policy]
mode = enforce
[vm db-*]
min = 8G
max = 4G
EOF
# Written back with "%g" this came back as 3000020 (found by fuzzing).
seed fuzz_policyfile param-digits <<EOF
[params]
hold_ms = 3000025
reclaim_psi_budget_pct = 7.123456789
[vm db-*]
reclaim = yes
EOF

# ---- fuzz_conf: one byte (0 scheduler, 1 actuator, 2 raw), the INI ----
{ byte 0; cat "$here/../../deploy/scheduler.conf"; } | seed fuzz_conf scheduler
{ byte 1; cat "$here/../../deploy/actuator.conf"; } | seed fuzz_conf actuator
{ byte 2; cat "$here/../../deploy/collector.conf"; } | seed fuzz_conf collector-raw
{ byte 2; cat "$here/../../deploy/guest-agent.conf"; } | seed fuzz_conf agent-raw
{ byte 0; printf '[scheduler]\ncommand_ttl = 30s ; inline\nmode = shadow\nshard = yes\n'; } |
	seed fuzz_conf scheduler-small
{ byte 2; printf '[a]\nsize = 768M\nt = 1500ms\nn = -3\nb = on\n[b c]\n  x=1h\n'; } |
	seed fuzz_conf raw-values

# ---- fuzz_trace: mmctl sim's CSV ----
seed fuzz_trace header <<EOF
time_s,vm,used_kib,max_kib
0,web-1,1048576,4194304
0,db-1,2097152,8388608
10,web-1,1572864,4194304
10,db-1,2097152,8388608
20,web-1,3145728,4194304
EOF
printf '0,a,1,2\n5,b,2,2\n5,a,0,2\n' | seed fuzz_trace plain
printf 'time_s,vm,used_kib,max_kib\n5,a,1,2\n3,a,1,2\n' | seed fuzz_trace backwards

# ---- fuzz_proc_text: one byte (0 meminfo, 1 vmstat, 2 PSI), the file ----
{ byte 0; cat <<EOF
MemTotal:        4194304 kB
MemFree:         1048576 kB
MemAvailable:    2097152 kB
Buffers:           10240 kB
Cached:           524288 kB
SwapTotal:             0 kB
SwapFree:              0 kB
AnonPages:        786432 kB
Active(file):     262144 kB
Inactive(file):   131072 kB
Shmem:              4096 kB
HugePages_Total:       0
EOF
} | seed fuzz_proc_text meminfo
{ byte 0; printf 'MemTotal: 100 kB\nMemFree: 200 kB\nMemTotal: 5 kB\nCached: 1 MB\n'; } |
	seed fuzz_proc_text meminfo-lies
{ byte 1; cat <<EOF
nr_free_pages 262144
nr_balloon_pages 1024
pgmajfault 12
pswpin 0
pswpout 0
workingset_refault_anon 1
workingset_refault_file 2
oom_kill 0
balloon_inflate 10
balloon_deflate 3
EOF
} | seed fuzz_proc_text vmstat
{ byte 2; cat <<EOF
some avg10=1.50 avg60=0.75 avg300=0.10 total=12345
full avg10=0.00 avg60=0.00 avg300=0.00 total=10
EOF
} | seed fuzz_proc_text psi
{ byte 2; printf 'some avg10=100.01 avg60=0.75 avg300=0.10 total=1\nfull avg10=0.00\n'; } |
	seed fuzz_proc_text psi-bad

# ---- fuzz_proc_files: one byte (the reader), files split at NUL ----
# files <reader> <file>...: each file's text (printf %b escapes, no NUL)
files() {
	byte "$1"; shift
	printf '%b' "$1"; shift
	for f; do byte 0; printf '%b' "$f"; done
}
files 0 '1\n' '100\n' '20\n' '1\n' '5\n' '100\n' '400\n' '50\n' '3\n' '0\n' |
	seed fuzz_proc_files ksm
files 1 'Node 0 MemTotal:  33554432 kB\nNode 0 MemFree: 4194304 kB\n' \
	'Node 1 MemTotal: 33554432 kB\nNode 1 MemFree: 1 kB\n' |
	seed fuzz_proc_files numa-nodes
{ byte 2; cat <<EOF
7f0000000000 default anon=512 dirty=512 N0=256 N1=256 kernelpagesize_kB=4
7f0000200000 bind:1 anon=1 dirty=1 N1=1 kernelpagesize_kB=2048
7f0000400000 default file=/usr/bin/qemu mapped=6 N0=6 kernelpagesize_kB=4
EOF
} | seed fuzz_proc_files numa-maps
files 3 '765 424 396 5 0 123 0\n' | seed fuzz_proc_files statm
files 4 'ksmd\n' '7 (ksmd) S 2 0 0 0 -1 2129984 0 0 0 0 150 250 0 0 25 5 1 0 30 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 1 0 0 0 0 0\n' |
	seed fuzz_proc_files ksmd
files 5 '42 (qemu) S 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 4 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n' \
	'' '0-3\n' '4-7\n' | seed fuzz_proc_files vcpu-nodes
{ byte 6; printf '0-3,8,10-11'; } | seed fuzz_proc_files cpulist
# ---- fuzz_history: the scheduler's history file (scheduler/history.c) ----
# hrec <host> <vm> <hour> <hours> <MiB per hour, newest first...>
hrec() {
	h=$1 v=$2 hour=$3 n=$4
	shift 4
	byte ${#h}; printf '%s' "$h"; byte ${#v}; printf '%s' "$v"
	le64 "$hour"; le32 "$n"
	for m in "$@"; do le32 "$m"; done
}
# FZ_HOUR of fuzz_history.c: the hour its reader takes as now.
now=499032
{ printf 'MMHIST01'
  hrec host-a web-1 $now 3 1024 4096 900
  hrec host-a db-1 $((now - 1)) 2 2048 2048
  hrec host-b vm-9 $now 1 512
} | seed fuzz_history two-hosts
{ printf 'MMHIST01'; hrec host-a web-1 $now 30 \
	1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 \
	6144 26 27 28 29 30; } | seed fuzz_history a-day-and-more
# A whole week: 168 hours, and a second record after it.
{ printf 'MMHIST01'; hrec host-a web-1 $now 168 $(seq 1000 1167)
  hrec host-a db-1 $now 1 64; } | seed fuzz_history a-week
{ printf 'MMHIST01'; hrec host-a web-1 $((now - 200)) 2 1 1; } |
	seed fuzz_history a-week-old
{ printf 'MMHIST01'; hrec host-a web-1 $now 4 1 2; } |
	seed fuzz_history truncated
printf 'policy = not a history file\n' | seed fuzz_history not-one

echo "seeds written under $corpus"
