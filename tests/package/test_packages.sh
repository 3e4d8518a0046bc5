#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the four packages (mm-guest-agent, mm-host, mm-scheduler, mmctl)
# as deb and rpm with CPack from the build tree and checks what a user
# gets: the files at their paths and in one package only, the conffiles
# and %config files 0640 root:mm, units whose paths are in the package,
# lintian without errors, rpmlint without unexpected errors, and the
# maintainer scripts run against stub systemctl, deb-systemd-helper and
# friends: first install enables, an admin's disable survives an upgrade,
# an upgrade try-restarts and never releases, a removal releases the
# guests before stopping the actuator. Also "make install" into a DESTDIR
# with the build's prefix: units whose ExecStart= and config paths exist
# there, configs 0640, an edited config kept.
# Usage: test_packages.sh <build dir>. Exit 77 skips (no rpmbuild or
# lintian).
set -euo pipefail

build=${1:?usage: test_packages.sh <build dir>}
work=$(mktemp -d /tmp/mm-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0

fail() { printf 'FAIL: %s\n' "$*" >&2; fails=$((fails + 1)); }
ok() { printf 'ok: %s\n' "$*"; }
# A group of checks: "begin", the checks, "passed <what>" (ok if none failed).
begin() { mark=$fails; }
passed() { if ((fails == mark)); then ok "$*"; fi; }
check() { # check <description> <command...>
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; return 1; fi
}

for tool in cpack dpkg-deb rpm; do
	command -v "$tool" >/dev/null || { echo "no $tool" >&2; exit 1; }
done
for tool in rpmbuild lintian; do
	if ! command -v "$tool" >/dev/null; then
		echo "skipped: $tool missing (apt-get install rpm lintian)" >&2
		exit 77
	fi
done

packages=(mm-guest-agent mm-host mm-scheduler mmctl)
declare -A files configs
files[mm-guest-agent]="/usr/sbin/mm-guest-agent
/usr/lib/systemd/system/mm-guest-agent.service
/usr/lib/udev/rules.d/60-mm-guest-agent.rules
/etc/mm/guest-agent.conf
/usr/share/man/man8/mm-guest-agent.8.gz
/usr/share/doc/mm-guest-agent/copyright"
files[mm-host]="/usr/sbin/mm-collector
/usr/sbin/mm-actuator
/usr/lib/systemd/system/mm-collector.service
/usr/lib/systemd/system/mm-actuator.service
/etc/mm/collector.conf
/etc/mm/actuator.conf
/usr/lib/sysusers.d/mm-host.conf
/usr/lib/tmpfiles.d/mm-host.conf
/usr/share/man/man8/mm-collector.8.gz
/usr/share/man/man8/mm-actuator.8.gz
/usr/share/doc/mm-host/copyright"
files[mm-scheduler]="/usr/sbin/mm-scheduler
/usr/lib/systemd/system/mm-scheduler.service
/etc/mm/scheduler.conf
/usr/lib/sysusers.d/mm-scheduler.conf
/usr/share/man/man8/mm-scheduler.8.gz
/usr/share/doc/mm-scheduler/copyright"
files[mmctl]="/usr/bin/mmctl
/usr/bin/mm-sim
/usr/share/man/man8/mmctl.8.gz
/usr/share/man/man1/mm-sim.1.gz
/usr/share/man/man5/mm-policy.5.gz
/usr/share/man/man5/mm.conf.5.gz
/usr/share/doc/mmctl/examples/policy.example"
configs[mm-guest-agent]="/etc/mm/guest-agent.conf"
configs[mm-host]="/etc/mm/actuator.conf
/etc/mm/collector.conf"
configs[mm-scheduler]="/etc/mm/scheduler.conf"
configs[mmctl]=""

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack-deb.log" 2>&1) ||
	{ cat "$work/cpack-deb.log" >&2; exit 1; }
(cd "$build" && cpack -G RPM -B "$work/out" >"$work/cpack-rpm.log" 2>&1) ||
	{ cat "$work/cpack-rpm.log" >&2; exit 1; }
declare -A deb rpm
for p in "${packages[@]}"; do
	deb[$p]=$(ls "$work"/out/"${p}"_*.deb 2>/dev/null) || true
	rpm[$p]=$(ls "$work"/out/"${p}"-[0-9]*.rpm 2>/dev/null) || true
	[[ -n ${deb[$p]} && -n ${rpm[$p]} ]] ||
		{ ls "$work/out" >&2; echo "FAIL: cpack made no $p deb or rpm" >&2; exit 1; }
done

# ---- contents ----
for p in "${packages[@]}"; do
	dpkg-deb -c "${deb[$p]}" | awk '$1 !~ /^d/ { print $6 }' |
		sed 's|^\.||' | sort >"$work/$p.deb.list"
	rpm -qlp "${rpm[$p]}" 2>/dev/null | grep -v '^/usr/lib/\.build-id' |
		sort >"$work/$p.rpm.list"
	missing=$(comm -23 <(sort <<<"${files[$p]}") "$work/$p.deb.list")
	check "deb $p has its files" test -z "$missing" ||
		printf '  missing: %s\n' $missing >&2
	missing=$(comm -23 <(sort <<<"${files[$p]}") "$work/$p.rpm.list")
	check "rpm $p has its files" test -z "$missing" ||
		printf '  missing: %s\n' $missing >&2
	[[ $(dpkg-deb -f "${deb[$p]}" Package) == "$p" ]] ||
		fail "deb package name is $(dpkg-deb -f "${deb[$p]}" Package), not $p"
done
# dpkg refuses to install a file another package already has: the host's
# packages go on one machine together.
dups=$(cat "$work"/*.deb.list | sort | uniq -d)
check "no file in two debs" test -z "$dups" || echo "  $dups" >&2

# Static (the default) or not, the agent must not pull the bus or
# libsystemd into a guest.
if dpkg-deb -f "${deb[mm-guest-agent]}" Depends | grep -Eq 'librabbitmq|libsystemd'; then
	fail "mm-guest-agent depends on $(dpkg-deb -f "${deb[mm-guest-agent]}" Depends)"
fi
for p in mm-host mm-scheduler; do
	dpkg-deb -f "${deb[$p]}" Depends | grep -qw adduser ||
		fail "$p does not depend on adduser (its postinst's fallback)"
done

begin
# ---- config files: conffiles / %config(noreplace), 0640, group mm ----
for p in "${packages[@]}"; do
	dpkg-deb -e "${deb[$p]}" "$work/control-$p"
	got=$(sort "$work/control-$p/conffiles" 2>/dev/null || true)
	[[ $got == "$(sort <<<"${configs[$p]}")" ]] ||
		fail "deb $p conffiles: \"$got\", want \"${configs[$p]}\""
	got=$(rpm -qp --configfiles "${rpm[$p]}" 2>/dev/null | sort)
	[[ $got == "$(sort <<<"${configs[$p]}")" ]] ||
		fail "rpm $p %config files: \"$got\", want \"${configs[$p]}\""
	rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "${rpm[$p]}" \
	    2>/dev/null | awk '$2 ~ /^\/etc\/mm\// && $1 !~ /n/ { print $2 }' \
	    >"$work/replace"
	[[ ! -s $work/replace ]] ||
		fail "rpm $p: not noreplace: $(cat "$work/replace")"
done
for p in mm-host mm-scheduler; do
	for f in ${configs[$p]}; do
		# dpkg cannot give group mm before the user exists: root:root
		# 0640 in the deb, postinst sets the group (checked below).
		mode=$(dpkg-deb -c "${deb[$p]}" | awk -v f=".$f" '$6 == f { print $1, $2 }')
		[[ $mode == "-rw-r----- root/root" ]] ||
			fail "deb $p: $f is \"$mode\", want -rw-r----- root/root"
		mode=$(rpm -qlvp "${rpm[$p]}" 2>/dev/null | awk -v f="$f" '$NF == f { print $1, $3, $4 }')
		[[ $mode == "-rw-r----- root mm" ]] ||
			fail "rpm $p: $f is \"$mode\", want -rw-r----- root mm"
	done
done
passed "conffiles, %config(noreplace), 0640 root:mm"

begin
# ---- units: what they start is in the package ----
for p in mm-guest-agent mm-host mm-scheduler; do
	dpkg-deb -x "${deb[$p]}" "$work/root-$p"
	for unit in "$work/root-$p"/usr/lib/systemd/system/*.service; do
		u=$(basename "$unit")
		if grep -qE '@[A-Z_]+@' "$unit"; then
			fail "$u: unreplaced @...@: $(grep -E '@[A-Z_]+@' "$unit")"
		fi
		for path in $(sed -nE 's/^(ExecStart|ExecStartPre)=-?([^ ]*).*/\2/p' "$unit") \
		    $(sed -nE 's/^Exec.*-c ([^ ]*).*/\1/p' "$unit"); do
			[[ -e $work/root-$p$path ]] ||
				fail "$u: $path is not in the $p package"
		done
	done
done
for u in mm-collector mm-actuator mm-scheduler; do
	f=$(ls "$work"/root-*/usr/lib/systemd/system/$u.service)
	grep -qx 'WatchdogSec=30s' "$f" || fail "$u.service has no WatchdogSec=30s"
	grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$f" ||
		fail "$u.service has no ExecReload="
	grep -q '^LoadCredential=bus.password:/etc/mm/.*\.password$' "$f" ||
		fail "$u.service has no LoadCredential=bus.password:/etc/mm/..."
	grep -q '^After=.*rabbitmq-server.service' "$f" ||
		fail "$u.service is not ordered after rabbitmq-server"
done
grep -qx 'Conflicts=ksmtuned.service numad.service' \
    "$work/root-mm-host/usr/lib/systemd/system/mm-actuator.service" ||
	fail "mm-actuator.service does not conflict with ksmtuned and numad"
grep -q '^ConditionPathExists=|/dev/virtio-ports/org.mm.agent.0$' \
    "$work/root-mm-guest-agent/usr/lib/systemd/system/mm-guest-agent.service" ||
	fail "mm-guest-agent.service is not conditional on its port"
grep -q 'ATTR{name}=="org.mm.agent.0".*SYSTEMD_WANTS.*mm-guest-agent.service' \
    "$work/root-mm-guest-agent/usr/lib/udev/rules.d/60-mm-guest-agent.rules" ||
	fail "the udev rule does not start mm-guest-agent on its port"
passed "units: paths in the package, watchdog, reload, credentials, ordering"

# ---- lintian and rpmlint ----
lintian --tag-display-limit 0 "${deb[@]}" >"$work/lintian.log" 2>&1 || true
grep -E '^[WI]: ' "$work/lintian.log" || true
if grep -q '^E: ' "$work/lintian.log"; then
	grep '^E: ' "$work/lintian.log" >&2
	fail "lintian reports errors"
else
	ok "lintian: no errors"
fi
if command -v rpmlint >/dev/null; then
	rpmlint "${rpm[@]}" >"$work/rpmlint.log" 2>&1 || true
	# Accepted: the agent is static by design (guest-agent/CMakeLists.txt),
	# the configs are 0640 on purpose, and a test build is not signed.
	grep -E ': E: ' "$work/rpmlint.log" |
		grep -vE 'mm-guest-agent\.[^:]*: E: statically-linked-binary /usr/sbin/mm-guest-agent$' |
		grep -vE ': E: non-readable /etc/mm/[a-z]+\.conf 640$' |
		grep -vE ': E: no-signature$' >"$work/rpmlint.errors" || true
	if [[ -s $work/rpmlint.errors ]]; then
		cat "$work/rpmlint.errors" >&2
		fail "rpmlint reports errors"
	else
		ok "rpmlint: no unexpected errors"
	fi
else
	echo "note: rpmlint not installed, not run"
fi

# ---- rpm scriptlets ----
scripts=$(rpm -qp --scripts "${rpm[mm-host]}" 2>/dev/null)
awk '/^preuninstall scriptlet/ { p = 1; next } /scriptlet/ { p = 0 } p' \
    <<<"$scripts" >"$work/rpm-preun"
awk '/^postuninstall scriptlet/ { p = 1; next } /scriptlet/ { p = 0 } p' \
    <<<"$scripts" >"$work/rpm-postun"
grep -q 'mm-actuator --release' "$work/rpm-preun" ||
	fail "rpm mm-host %preun does not release the guests"
grep -q 'try-restart' "$work/rpm-postun" ||
	fail "rpm mm-host %postun does not try-restart"
! grep -q -- '--release' "$work/rpm-postun" ||
	fail "rpm mm-host %postun releases"
rpm -qp --scripts "${rpm[mm-scheduler]}" 2>/dev/null | grep -q 'useradd -r' ||
	fail "rpm mm-scheduler %pre does not create the mm user"

# ---- maintainer scripts against stubs ----
# Every command they run is a stub logging "name args" to $STUB_LOG,
# except a few tools; the paths they touch are moved under $root.
# deb-systemd-helper keeps its state in $state: enabled/<unit>, and
# seen/<unit> once it has handled a unit (was-enabled is true for a unit
# it has never seen, as the real one is on a first install).
stub=$work/stub tools=$work/tools root=$work/root state=$work/dsh
mkdir -p "$stub" "$tools" "$root/etc/mm" "$root/var/lib/mm" \
    "$root/run/systemd/system" "$state/enabled" "$state/seen"
for t in chmod rm rmdir cat timeout; do
	ln -s "$(command -v "$t")" "$tools/$t"
done
cat >"$stub/_stub" <<'STUB'
#!/bin/sh
echo "${0##*/} $*" >>"$STUB_LOG"
case ${0##*/} in
deb-systemd-helper)
	verb=$1; [ "$verb" = --quiet ] && { shift; verb=$1; }
	shift
	for u in "$@"; do
		case $verb in
		was-enabled) [ ! -e "$STUB_STATE/seen/$u" ] ||
			[ -e "$STUB_STATE/enabled/$u" ] || exit 1 ;;
		enable) : >"$STUB_STATE/enabled/$u"; : >"$STUB_STATE/seen/$u" ;;
		update-state) : >"$STUB_STATE/seen/$u" ;;
		esac
	done ;;
getent) exit 2 ;;
dpkg-statoverride) [ "$2" = "${STUB_STATOVERRIDE:-}" ] || exit 1 ;;
dpkg-query) echo "${STUB_OTHER:-not-installed}" ;;
esac
# STUB_STATUS: what systemd's tools (and the release) return.
case ${0##*/} in
systemctl | deb-systemd-* | systemd-tmpfiles | mm-actuator)
	exit "${STUB_STATUS:-0}" ;;
esac
exit 0
STUB
chmod +x "$stub/_stub"
for c in systemctl deb-systemd-helper deb-systemd-invoke systemd-sysusers \
    systemd-tmpfiles adduser getent chgrp dpkg-statoverride dpkg-query \
    mm-actuator; do
	ln -s _stub "$stub/$c"
done
export STUB_LOG=$work/calls.log STUB_STATE=$state
# run <package> <script> <args...>: the script with paths under $root.
run() {
	local p=$1 s=$2
	shift 2
	sed -e "s|/run/systemd/system|$root/run/systemd/system|g" \
	    -e "s|/etc/mm|$root/etc/mm|g" -e "s|/var/lib/mm|$root/var/lib/mm|g" \
	    "$work/control-$p/$s" >"$work/script"
	PATH=$stub:$tools /bin/sh -e "$work/script" "$@"
}
calls() { grep -c -- "$1" "$STUB_LOG" || true; }

for p in mm-guest-agent mm-host mm-scheduler; do
	for s in postinst prerm postrm; do
		[[ -x $work/control-$p/$s ]] || fail "deb $p: no executable $s"
	done
done
[[ ! -e $work/control-mmctl/postinst ]] || fail "mmctl has a postinst"

begin
# mm-host, first install.
install -m 0644 /dev/null "$root/etc/mm/collector.conf"
install -m 0644 /dev/null "$root/etc/mm/actuator.conf"
: >"$STUB_LOG"
run mm-host postinst configure || fail "mm-host postinst configure failed"
for u in mm-collector.service mm-actuator.service; do
	[[ -e $state/enabled/$u ]] || fail "first install did not enable $u"
done
(($(calls 'systemd-sysusers /usr/lib/sysusers.d/mm-host.conf') == 1)) ||
	fail "postinst did not run systemd-sysusers on its file"
(($(calls 'systemd-tmpfiles --create /usr/lib/tmpfiles.d/mm-host.conf') == 1)) ||
	fail "postinst did not create the directories with systemd-tmpfiles"
(($(calls 'deb-systemd-invoke') == 0)) ||
	fail "first install started an unconfigured unit: $(grep invoke "$STUB_LOG")"
for f in collector.conf actuator.conf host.password; do
	[[ $(stat -c %a "$root/etc/mm/$f") == 640 ]] ||
		fail "after postinst /etc/mm/$f is $(stat -c %a "$root/etc/mm/$f")"
	(($(calls "chgrp mm $root/etc/mm/$f") == 1)) ||
		fail "postinst did not give /etc/mm/$f to group mm"
done
[[ ! -s $root/etc/mm/host.password ]] || fail "the new host.password is not empty"
passed "mm-host first install: sysusers, tmpfiles, enabled, not started, configs and password 0640 group mm"

begin
# Without systemd-sysusers: adduser; an admin's statoverride is kept; the
# admin's password is never touched.
mv "$stub/systemd-sysusers" "$work/sysusers.away"
echo secret >"$root/etc/mm/host.password"
chmod 0600 "$root/etc/mm/host.password" "$root/etc/mm/actuator.conf"
: >"$STUB_LOG"
STUB_STATOVERRIDE=$root/etc/mm/actuator.conf run mm-host postinst configure ||
	fail "mm-host postinst without systemd-sysusers failed"
mv "$work/sysusers.away" "$stub/systemd-sysusers"
(($(calls 'adduser --system --group') == 1)) ||
	fail "without systemd-sysusers postinst did not run adduser"
[[ $(stat -c %a "$root/etc/mm/actuator.conf") == 600 ]] ||
	fail "postinst overrode the admin's dpkg-statoverride"
[[ $(cat "$root/etc/mm/host.password") == secret &&
    $(stat -c %a "$root/etc/mm/host.password") == 600 ]] ||
	fail "postinst changed an existing host.password"
passed "adduser fallback, statoverride and an existing password kept"

begin
# Upgrade: the admin disabled the actuator; both are try-restarted, the
# actuator stays disabled, nothing is released or stopped.
rm "$state/enabled/mm-actuator.service"
: >"$STUB_LOG"
run mm-host prerm upgrade 0.1.0+up1 || fail "mm-host prerm upgrade failed"
run mm-host postinst configure 0.1.0 || fail "mm-host postinst upgrade failed"
[[ ! -e $state/enabled/mm-actuator.service ]] ||
	fail "the upgrade enabled the actuator the admin had disabled"
[[ -e $state/enabled/mm-collector.service ]] ||
	fail "the upgrade lost the collector's enablement"
grep -q '^deb-systemd-invoke try-restart mm-collector.service mm-actuator.service$' \
    "$STUB_LOG" || fail "the upgrade did not try-restart the units"
(($(calls '--release') == 0)) || fail "the upgrade released the guests"
(($(calls ' stop ') == 0)) || fail "the upgrade stopped a unit"
passed "mm-host upgrade: try-restart, admin's disable kept, no release, no stop"

begin
# Removal: stop, then release (a running actuator holds the VMs' QMP
# monitors; a stop keeps the targets), then mask; purge removes the password and
# /var/lib/mm unless mm-scheduler is still installed.
: >"$STUB_LOG"
run mm-host prerm remove || fail "mm-host prerm remove failed"
run mm-host postrm remove || fail "mm-host postrm remove failed"
order=$(grep -nE '^mm-actuator --release|^deb-systemd-invoke stop' "$STUB_LOG" |
	cut -d: -f2 | cut -d' ' -f1-2 | tr '\n' ,)
[[ $order == "deb-systemd-invoke stop,mm-actuator --release," ]] ||
	fail "removal: want stop then release, got \"$order\""
grep -q "^mm-actuator --release -c $root/etc/mm/actuator.conf$" "$STUB_LOG" ||
	fail "removal did not release with /etc/mm/actuator.conf"
(($(calls 'deb-systemd-helper mask') == 1)) || fail "postrm remove did not mask"
STUB_OTHER=installed run mm-host postrm purge || fail "mm-host postrm purge failed"
[[ -d $root/var/lib/mm ]] || fail "purge removed /var/lib/mm while mm-scheduler is installed"
[[ ! -e $root/etc/mm/host.password ]] || fail "purge left host.password"
run mm-host postrm purge
[[ ! -e $root/var/lib/mm ]] || fail "purge left /var/lib/mm"
passed "mm-host removal: stop, then --release, mask; purge"

begin
# mm-scheduler: its own sysusers file and password; mm-guest-agent: started
# on first install (udev or not, its conditions decide), no user.
: >"$STUB_LOG"
run mm-scheduler postinst configure || fail "mm-scheduler postinst failed"
(($(calls 'systemd-sysusers /usr/lib/sysusers.d/mm-scheduler.conf') == 1)) ||
	fail "mm-scheduler postinst did not run systemd-sysusers"
[[ $(stat -c %a "$root/etc/mm/scheduler.password" 2>&1) == 640 ]] ||
	fail "mm-scheduler postinst did not create scheduler.password 0640"
[[ -e $state/enabled/mm-scheduler.service ]] || fail "mm-scheduler not enabled"
(($(calls '--release') == 0)) || fail "mm-scheduler's scripts release"
: >"$STUB_LOG"
run mm-guest-agent postinst configure || fail "mm-guest-agent postinst failed"
grep -q '^deb-systemd-invoke start mm-guest-agent.service$' "$STUB_LOG" ||
	fail "mm-guest-agent not started on first install"
(($(calls 'adduser\|sysusers\|chgrp') == 0)) ||
	fail "mm-guest-agent's postinst touches users: $(cat "$STUB_LOG")"
passed "mm-scheduler and mm-guest-agent scripts"

begin
# No script fails when systemctl and its helpers fail, or without systemd.
export STUB_STATUS=1
for p in mm-guest-agent mm-host mm-scheduler; do
	for args in "postinst configure" "postinst configure 0.1.0" "prerm remove" \
	    "postrm remove" "postrm purge"; do
		# shellcheck disable=SC2086
		run "$p" $args || fail "$p $args fails when the helpers fail"
	done
done
unset STUB_STATUS
rmdir "$root/run/systemd/system"
: >"$STUB_LOG"
run mm-host prerm remove || fail "mm-host prerm remove without systemd failed"
(($(calls 'deb-systemd-invoke') == 0)) || fail "prerm invoked units without systemd"
passed "maintainer scripts never fail"

begin
# rpm scriptlets: the same decisions on $1.
rpm_run() { # rpm_run <tag> <$1>
	rpm -qp --qf "%{$1}" "${rpm[mm-host]}" 2>/dev/null |
		sed -e "s|/etc/mm|$root/etc/mm|g" >"$work/scriptlet"
	PATH=$stub:$tools /bin/sh "$work/scriptlet" "$2"
}
: >"$STUB_LOG"
rpm_run PREUN 1 && rpm_run POSTUN 1
(($(calls '--release') == 0)) || fail "rpm upgrade released the guests"
grep -q '^systemctl try-restart mm-collector.service mm-actuator.service$' "$STUB_LOG" ||
	fail "rpm upgrade did not try-restart"
: >"$STUB_LOG"
rpm_run PREUN 0
order=$(grep -nE '^mm-actuator --release|^systemctl --no-reload disable --now' "$STUB_LOG" |
	cut -d: -f2 | cut -d' ' -f1 | tr '\n' ,)
[[ $order == "systemctl,mm-actuator," ]] ||
	fail "rpm erase: want disable --now then release, got \"$order\""
: >"$STUB_LOG"
rpm_run POSTIN 1
grep -q '^systemctl --no-reload preset mm-collector.service mm-actuator.service$' \
    "$STUB_LOG" || fail "rpm first install did not preset the units"
passed "rpm scriptlets: preset, try-restart on upgrade, stop then release on erase"

begin
# ---- make install with the build's prefix ----
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
dest=$work/destdir
DESTDIR=$dest cmake --install "$build" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log" >&2; fail "make install failed"; }
units=("$dest$prefix"/lib/systemd/system/*.service)
((${#units[@]} == 4)) || fail "make install: ${#units[@]} units in $prefix/lib/systemd/system"
for unit in "${units[@]}"; do
	for path in $(sed -nE 's/^(ExecStart|ExecStartPre)=-?([^ ]*).*/\2/p' "$unit") \
	    $(sed -nE 's/^Exec.*-c ([^ ]*).*/\1/p' "$unit") \
	    $(sed -nE 's/^LoadCredential=[^:]*:(.*)/\1/p' "$unit"); do
		[[ -e $dest$path ]] ||
			fail "make install: $(basename "$unit") names $path, not installed"
	done
done
conf=$(sed -nE 's/^ExecStart=.* -c ([^ ]*).*/\1/p' \
    "$dest$prefix/lib/systemd/system/mm-collector.service")
[[ $(stat -c %a "$dest$conf" 2>&1) == 640 ]] ||
	fail "make install: $conf is $(stat -c %a "$dest$conf" 2>&1), want 640"
echo "; edited" >>"$dest$conf"
DESTDIR=$dest cmake --install "$build" >"$work/install.log" 2>&1 ||
	fail "second make install failed"
grep -q '^; edited$' "$dest$conf" || fail "make install overwrote an edited $conf"
[[ -e $dest$conf.new ]] || fail "make install did not put the new config in $conf.new"
passed "make install (prefix $prefix): unit paths exist, configs 0640, an edited config kept"

# ---- the unpacked agent works: config checks, one report ----
agent=$work/root-mm-guest-agent/usr/sbin/mm-guest-agent
"$agent" -n -c "$work/root-mm-guest-agent/etc/mm/guest-agent.conf" | grep -qx \
	"configuration OK" && ok "packaged config parses" ||
	fail "packaged config does not parse"
out=$("$agent" -d -c "$work/root-mm-guest-agent/etc/mm/guest-agent.conf" \
	--channel stdout --once 2>/dev/null)
total=$(sed -n 's/.*"total_kib":\([0-9]*\).*/\1/p' <<<"$out")
want=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
[[ $total == "$want" ]] && ok "report: total_kib $total" ||
	fail "report total_kib \"$total\", /proc/meminfo says $want: $out"
grep -q '"agent_seq":0' <<<"$out" || fail "report lacks agent_seq 0: $out"

if ((fails > 0)); then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "packages OK: $(cd "$work/out" && echo *.deb *.rpm)"
