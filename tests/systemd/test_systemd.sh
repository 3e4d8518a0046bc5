#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The units under a real systemd: a Debian 12 booted with systemd-nspawn
# (root file system from rootfs.sh, cached in the build tree) gets the
# built debs with dpkg -i, as an operator's host would, and talks to the
# test broker over TLS with a per-host broker user. mm-sim on this machine
# plays the host's VMs (its QMP sockets and /proc bound into the
# container). Checked, as a user would see it:
#  - the packages install: mm user, /run/mm, configs 0640 root:mm, units
#    enabled; mm-collector, mm-actuator, mm-scheduler become active through
#    Type=notify and the loop closes (balloons move to the scheduler's
#    targets) over amqps with the passwords in LoadCredential files;
#  - "systemctl reload" reloads (same process, the journal says so);
#  - a SIGSTOPped daemon is restarted by the watchdog;
#  - an upgrade of mm-host restarts the actuator and no balloon moves
#    toward its maximum meanwhile;
#  - removing mm-host releases the guests, only as far as the host's free
#    memory allows;
#  - the passwords appear in no journal, no process list and no
#    world-readable file.
# Usage: test_systemd.sh <source dir> <build dir>. Needs root,
# systemd-nspawn, mmdebstrap, and a TLS broker ($MM_TEST_AMQPS_URL,
# $MM_TEST_TLS_CA from scripts/rabbitmq.sh env). Exit 77 skips.
set -euo pipefail

src=${1:?usage: test_systemd.sh <source dir> <build dir>}
build=${2:?usage: test_systemd.sh <source dir> <build dir>}
fails=0
started=$SECONDS

say() { printf 'test_systemd: %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; fails=$((fails + 1)); }
ok() { printf 'ok: %s (%d s)\n' "$*" $((SECONDS - started)); }
skip() { printf 'skipped: %s\n' "$*" >&2; exit 77; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

((EUID == 0)) || skip "needs root (systemd-nspawn)"
for tool in systemd-nspawn mmdebstrap nsenter cpack dpkg-deb python3; do
	command -v "$tool" >/dev/null || skip "no $tool"
done
[[ -n ${MM_TEST_AMQPS_URL:-} && -n ${MM_TEST_TLS_CA:-} &&
    -n ${MM_TEST_BROKER_CTL:-} ]] ||
	skip "no TLS broker (MM_TEST_AMQPS_URL, MM_TEST_TLS_CA): start" \
	    "scripts/rabbitmq.sh with MM_RABBITMQ_TLS_PORT set"

work=$(mktemp -d /tmp/mm-systemd.XXXXXX)
nspawn_pid=
sim_pid=
cleanup() {
	if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
		kill -TERM "$nspawn_pid" 2>/dev/null || true
		for _ in $(seq 50); do
			kill -0 "$nspawn_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
	fi
	[[ -n $sim_pid ]] && kill "$sim_pid" 2>/dev/null
	[[ -n ${host_id:-} ]] && broker_host remove "$host_id" >/dev/null 2>&1
	rm -rf "$work"
}
trap cleanup EXIT

# ---- the packages, from a build without sanitizers ----
pkg_build=${MM_PACKAGE_BUILD_DIR:-$build/systemd-pkg}
if [[ ! -f $pkg_build/CPackConfig.cmake || -z ${MM_PACKAGE_BUILD_DIR:-} ]]; then
	cmake -S "$src" -B "$pkg_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
	cmake --build "$pkg_build" -j"$(nproc)" >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log"; exit 1; }
fi
(cd "$pkg_build" && cpack -G DEB -B "$work/debs" >"$work/cpack.log" 2>&1) ||
	{ cat "$work/cpack.log"; exit 1; }
rm -rf "$work/debs/_CPack_Packages"
for p in mm-host mm-scheduler mmctl; do
	ls "$work"/debs/"${p}"_*.deb >/dev/null 2>&1 || die "cpack made no $p deb"
done
ok "debs: $(cd "$work/debs" && echo *.deb)"

# The upgrade: the same mm-host with a higher version, as a new release
# would be (its maintainer scripts run as for any upgrade).
deb=$(ls "$work"/debs/mm-host_*.deb)
dpkg-deb -R "$deb" "$work/repack"
version=$(sed -n 's/^Version: //p' "$work/repack/DEBIAN/control")
sed -i "s/^Version: .*/Version: $version+up1/" "$work/repack/DEBIAN/control"
mkdir -p "$work/upgrade"
dpkg-deb --root-owner-group -b "$work/repack" \
    "$work/upgrade/mm-host_${version}+up1.deb" >/dev/null

# ---- the container ----
rootfs=$build/systemd-rootfs
"$src/tests/systemd/rootfs.sh" "$rootfs" || die "cannot build $rootfs"

# mm-sim plays the host: two VMs of 2 GiB on a host of 3.5 GiB (512 MiB
# of it the host's own): overcommitted, so the scheduler shrinks the
# guests, and too small to give both their maximum back at the removal
# with the actuator's 512 MiB reserve (see below).
mkdir -p "$work/vm" "$work/sim"
sim_bin=$pkg_build/bin/mm-sim
"$sim_bin" -s "$work/vm" -r "$work/sim" -H 3584M -i 1s \
    -m web,2G,static:900M -m db,2G,static:500M >"$work/sim.log" 2>&1 &
sim_pid=$!

machine=mmtest$$
systemd-nspawn -D "$rootfs" --register=no --keep-unit --volatile=overlay \
    -M "$machine" --bind-ro="$work/debs:/mnt/debs" \
    --bind-ro="$work/upgrade:/mnt/upgrade" \
    --bind="$work/vm:/run/mm/vm" --bind="$work/sim:/run/mm/sim" \
    --bind-ro="$MM_TEST_TLS_CA:/mnt/ca.pem" \
    -b >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
# The container's PID 1: a "systemd" process below systemd-nspawn.
descends() {
	local p=$1
	for _ in 1 2 3 4; do
		p=$(ps -o ppid= -p "$p" 2>/dev/null | tr -d ' ')
		[[ -n $p && $p != 0 ]] || return 1
		[[ $p == "$nspawn_pid" ]] && return 0
	done
	return 1
}
# It is the one in a PID namespace of its own (before its exec the
# process may still be in ours).
find_leader() {
	local p
	for p in $(pgrep -x systemd); do
		if [[ $(readlink "/proc/$p/ns/pid") != $(readlink /proc/self/ns/pid) ]] &&
		    descends "$p"; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
leader= state=
deadline=$((SECONDS + 90))
while ((SECONDS < deadline)); do
	if leader=$(find_leader); then
		state=$(timeout 60 nsenter -t "$leader" -a systemctl \
		    is-system-running --wait 2>/dev/null) || true
		[[ $state == running || $state == degraded ]] && break
	fi
	sleep 0.2
done
ct() { nsenter -t "$leader" -a "$@"; }
[[ $state == running || $state == degraded ]] ||
	{ cat "$work/nspawn.log"; die "systemd in the container: \"$state\""; }
ok "systemd booted in the container ($state)"

# ---- install ----
ct sh -c 'dpkg -i /mnt/debs/mm-host_*.deb /mnt/debs/mm-scheduler_*.deb /mnt/debs/mmctl_*.deb' \
    >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; die "dpkg -i failed"; }
ok "dpkg -i mm-host mm-scheduler mmctl"
ct getent passwd mm >/dev/null || fail "no mm user after install"
[[ $(ct stat -c '%U:%G' /run/mm 2>/dev/null) == root:mm ]] ||
	fail "/run/mm is $(ct stat -c '%U:%G %a' /run/mm 2>&1)"
for f in collector.conf actuator.conf scheduler.conf host.password scheduler.password; do
	got=$(ct stat -c '%a %U:%G' "/etc/mm/$f" 2>&1)
	[[ $got == "640 root:mm" ]] || fail "/etc/mm/$f is $got, want 640 root:mm"
done
for u in mm-collector mm-actuator mm-scheduler; do
	[[ $(ct systemctl is-enabled "$u.service") == enabled ]] ||
		fail "$u.service is not enabled after install"
done
ok "mm user, /run/mm, configs 0640 root:mm, units enabled"

# ---- per-host broker user, TLS configuration ----
# shellcheck disable=SC2329
broker_host() {
	MM_RABBITMQCTL="$MM_TEST_BROKER_CTL ctl" \
	    "$src/deploy/rabbitmq/mm-broker-host" "$@"
}
host_id=systemd-test-$$
broker_host add "$host_id" --generate "$work/host.password" \
    >"$work/broker-host.log" 2>&1 ||
	{ cat "$work/broker-host.log"; die "mm-broker-host add failed"; }
host_pw=$(cat "$work/host.password")
sched_pw=scheduler	# scripts/rabbitmq.sh's test password of the role
[[ -n $host_pw ]] || die "mm-broker-host wrote no password"
# amqps://[user[:password]@]host:port/vhost, without a password.
tls_hostport=$(sed -E 's|^amqps://([^@/]*@)?([^/]*)/.*|\2|' <<<"$MM_TEST_AMQPS_URL")
vhost=$(sed -E 's|^amqps://[^/]*/||' <<<"$MM_TEST_AMQPS_URL")

ct install -d -m 0755 /etc/mm
ct install -m 0644 /mnt/ca.pem /etc/mm/ca.pem
printf '%s\n' "$host_pw" | ct sh -c 'cat > /etc/mm/host.password'
printf '%s\n' "$sched_pw" | ct sh -c 'cat > /etc/mm/scheduler.password'
common_host="driver = sim
vm_dir = /run/mm/vm
proc_root = /run/mm/sim/proc
sys_root = /run/mm/sim/sys
rescan = 500ms"
ct sh -c "cat > /etc/mm/collector.conf" <<EOF
[collector]
host_id = $host_id
$common_host
[bus]
url = amqps://$host_id@$tls_hostport/$vhost
ca_file = /etc/mm/ca.pem
EOF
ct sh -c "cat > /etc/mm/actuator.conf" <<EOF
[actuator]
host_id = $host_id
$common_host
ksm = no
numa = no
host_reserve = 512M
[bus]
url = amqps://$host_id@$tls_hostport/$vhost
ca_file = /etc/mm/ca.pem
EOF
ct sh -c "cat > /etc/mm/scheduler.conf" <<EOF
[scheduler]
id = sched-$host_id
state_file = /var/lib/mm/scheduler.policy
stats_pattern = host.$host_id
[bus]
url = amqps://scheduler@$tls_hostport/$vhost
ca_file = /etc/mm/ca.pem
EOF
# A short watchdog, so that its restart is seen within the test.
for u in mm-collector mm-actuator mm-scheduler; do
	ct mkdir -p "/etc/systemd/system/$u.service.d"
	ct sh -c "printf '[Service]\nWatchdogSec=4s\nRestartSec=1s\n' \
	    > /etc/systemd/system/$u.service.d/test.conf"
done
ct systemctl daemon-reload

# ---- start, Type=notify, the closed loop ----
for u in mm-scheduler mm-collector mm-actuator; do
	if ! ct timeout 60 systemctl restart "$u.service"; then
		ct journalctl -u "$u" --no-pager -n 30 >&2 || true
		fail "systemctl restart $u failed"
	fi
done
bad=0
for u in mm-scheduler mm-collector mm-actuator; do
	st=$(ct systemctl show -p Type,ActiveState,SubState "$u.service" | sort | tr '\n' ' ')
	[[ $st == "ActiveState=active SubState=running Type=notify " ]] ||
		{ fail "$u: $st"; bad=1; }
done
((bad)) || ok "mm-scheduler, mm-collector, mm-actuator active (Type=notify)"

# What mm-sim's QMP monitor says the balloon is, in MiB.
# With a second argument, set it to that many MiB first (as the
# scheduler's targets would).
balloon() {
	python3 - "$work/vm/$1.qmp" "${2:-}" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()
cmds = [{"execute": "qmp_capabilities"}]
if sys.argv[2]:
    cmds.append({"execute": "balloon",
                 "arguments": {"value": int(sys.argv[2]) << 20}})
cmds.append({"execute": "query-balloon"})
for cmd in cmds:
    f.write(json.dumps(cmd) + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            break
print(r["return"]["actual"] >> 20)
PY
}
# Wait up to $1 s until every VM's balloon is below $2 MiB.
balloons_below() {
	local deadline=$((SECONDS + $1)) vm
	while ((SECONDS < deadline)); do
		local all=1
		for vm in web db; do
			(($(balloon "$vm") < $2)) || all=0
		done
		((all)) && return 0
		sleep 1
	done
	return 1
}
if balloons_below 60 2000; then
	ok "the loop closed over amqps: web $(balloon web) MiB, db $(balloon db) MiB of 2048"
else
	fail "balloons not moved by the scheduler: web $(balloon web), db $(balloon db)"
	ct journalctl -u mm-collector -u mm-actuator -u mm-scheduler --no-pager -n 60 >&2 || true
fi

# Decisions in the journal with fields, and a live status line.
fields=$(ct journalctl -u mm-actuator -o json --no-pager "HOST_ID=$host_id" |
    jq -r 'select(.VM_ID == "web" or .VM_ID == "db") |
    [.HOST_ID, .VM_ID, (.REASON | length > 0), .PRIORITY] | @tsv' | head -n 1)
if [[ $fields == "$host_id"$'\t'*$'\t'true$'\t'6 ]]; then
	ok "decisions in the journal with HOST_ID, VM_ID and REASON at info"
else
	fail "no decision with HOST_ID=$host_id, VM_ID and REASON in the journal: '$fields'"
fi
# The line comes a second after start, then every 5 s.
for _ in $(seq 20); do
	status=$(ct systemctl show -p StatusText --value mm-actuator.service)
	[[ $status == "host $host_id: "*batches* ]] && break
	sleep 0.5
done
[[ $status == "host $host_id: "*batches* ]] && ok "systemctl status: $status" ||
    fail "no live status line for mm-actuator: '$status'"

# ---- reload ----
pid=$(ct systemctl show -p MainPID --value mm-collector.service)
# interval can change live; rescan (the driver's) takes a restart.
ct sed -i -e 's/^\[collector\]$/[collector]\ninterval = 2s/' \
    -e 's/^rescan = 500ms/rescan = 700ms/' /etc/mm/collector.conf
ct timeout 30 systemctl reload mm-collector.service || fail "systemctl reload failed"
sleep 1
[[ $(ct systemctl show -p MainPID --value mm-collector.service) == "$pid" ]] ||
	fail "reload replaced the process"
[[ $(ct systemctl is-active mm-collector.service) == active ]] ||
	fail "mm-collector not active after reload"
ct journalctl -u mm-collector --no-pager -o cat >"$work/reload.log"
grep -q 'reload: \[collector\] interval = 2s' "$work/reload.log" ||
	fail "the journal does not show the new interval: $(grep reload "$work/reload.log")"
grep -q 'rescan changed; it takes effect at the next restart' "$work/reload.log" ||
	fail "the journal does not say rescan needs a restart"
ok "systemctl reload mm-collector: same pid $pid, interval 2s applied, rescan left for a restart"

# ---- watchdog ----
restarts() { ct systemctl show -p NRestarts --value "$1.service"; }
before=$(restarts mm-scheduler)
spid=$(ct systemctl show -p MainPID --value mm-scheduler.service)
ct kill -STOP "$spid"
deadline=$((SECONDS + 20))
while ((SECONDS < deadline)); do
	now=$(ct systemctl show -p MainPID --value mm-scheduler.service)
	if [[ $now != "$spid" && $now != 0 && $(ct systemctl is-active mm-scheduler.service) == active ]]; then
		break
	fi
	sleep 0.5
done
if [[ $(restarts mm-scheduler) -gt $before ]] &&
    ct journalctl -u mm-scheduler --no-pager | grep -qi 'watchdog'; then
	ok "SIGSTOPped mm-scheduler restarted by the watchdog (pid $spid -> $now)"
else
	fail "no watchdog restart of a stopped mm-scheduler (NRestarts $(restarts mm-scheduler))"
fi

# ---- upgrade keeps targets ----
balloons_below 30 2000 || true
web0=$(balloon web) db0=$(balloon db)
apid=$(ct systemctl show -p MainPID --value mm-actuator.service)
ct sh -c 'dpkg -i /mnt/upgrade/mm-host_*.deb' >"$work/upgrade.log" 2>&1 &
upgrade=$!
webmax=$web0 dbmax=$db0
while kill -0 "$upgrade" 2>/dev/null; do
	w=$(balloon web) d=$(balloon db)
	((w > webmax)) && webmax=$w
	((d > dbmax)) && dbmax=$d
	sleep 0.2
done
wait "$upgrade" || { cat "$work/upgrade.log"; fail "the upgrade failed"; }
# And a few seconds after, as the new actuator comes up.
for _ in $(seq 10); do
	w=$(balloon web) d=$(balloon db)
	((w > webmax)) && webmax=$w
	((d > dbmax)) && dbmax=$d
	sleep 0.5
done
apid2=$(ct systemctl show -p MainPID --value mm-actuator.service)
[[ $apid2 != "$apid" && $apid2 != 0 ]] ||
	fail "the upgrade did not restart mm-actuator (pid $apid -> $apid2)"
[[ $(ct dpkg-query -W -f '${Version}' mm-host) == "$version+up1" ]] ||
	fail "mm-host not upgraded"
if ((webmax <= web0 + 64 && dbmax <= db0 + 64)); then
	ok "upgrade restarted mm-actuator ($apid -> $apid2), balloons kept: web $web0..$webmax, db $db0..$dbmax MiB"
else
	fail "balloons moved toward their maximum during the upgrade: web $web0 -> $webmax, db $db0 -> $dbmax MiB"
fi

# ---- removal releases within free memory ----
# The scheduler stops, and the guests are set to 1100 and 700 MiB (their
# use is 900 and 500): the host then has 3584 - 512 - 1800 = 1272 MiB
# available, 760 above the actuator's reserve, less than the guests'
# 2296 MiB below their maximum.
ct systemctl stop mm-scheduler.service
balloon web 1100 >/dev/null
balloon db 700 >/dev/null
# The balloons move at mm-sim's pace.
for _ in $(seq 60); do
	(($(balloon web) <= 1110 && $(balloon db) <= 710)) && break
	sleep 0.5
done
sleep 1
avail() { awk '/^MemAvailable:/ { print int($2 / 1024) }' "$work/sim/proc/meminfo"; }
web0=$(balloon web) db0=$(balloon db) free0=$(avail)
ct dpkg -r mm-host >"$work/remove.log" 2>&1 || { cat "$work/remove.log"; fail "dpkg -r mm-host failed"; }
sleep 3
web1=$(balloon web) db1=$(balloon db)
given=$(((web1 - web0) + (db1 - db0)))
say "removal: web $web0 -> $web1, db $db0 -> $db1 MiB; host available was $free0 MiB"
if ((web1 >= web0 && db1 >= db0 && given > 0 && web1 <= 2048 && db1 <= 2048)); then
	ok "dpkg -r mm-host released $given MiB to the guests"
else
	fail "removal did not release the guests: web $web0 -> $web1, db $db0 -> $db1"
fi
# Largest need first: db lacks the most; and not everything fits.
((db1 > db0)) || fail "the release did not start with db, the guest lacking the most"
((web1 + db1 < 4096)) || fail "the release gave both guests their maximum: more than the host had"
# The host keeps its reserve: what was given fits in what was available.
((given <= free0 - 512 + 64)) ||
	fail "release gave $given MiB, more than the host's $free0 MiB available less its 512 MiB reserve"
[[ $(ct systemctl is-active mm-actuator.service) != active ]] ||
	fail "mm-actuator still active after removal"

# ---- no password anywhere ----
for pw in "$host_pw" "$sched_pw"; do
	if ct journalctl --no-pager -o cat | grep -qF -- ":$pw@"; then
		fail "a broker URL with its password in the journal"
	fi
	if ct journalctl --no-pager -o cat | grep -qF -- "$pw" && [[ $pw != scheduler ]]; then
		fail "the host's broker password is in the journal"
	fi
done
if ct ps -eo args | grep -qF -- "$host_pw"; then
	fail "the host's password is on a command line"
fi
world=$(ct find /etc/mm /run/mm /var/lib/mm -xdev -type f -perm -o+r 2>/dev/null |
	while read -r f; do ct grep -lF -- "$host_pw" "$f" 2>/dev/null; done || true)
[[ -z $world ]] || fail "world-readable files hold the password: $world"
ok "passwords in no journal line, no process list, no world-readable file"

if ((fails > 0)); then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "systemd test OK in $((SECONDS - started)) s"
