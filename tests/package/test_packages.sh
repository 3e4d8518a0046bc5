#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the mm-guest-agent deb and rpm with CPack from the build tree and
# checks what a user gets: the files at their paths, the conffile, the
# maintainer scripts (run against a stub systemctl, with and without it
# failing), and that the unpacked binary reports this machine.
# Usage: test_packages.sh <build dir>. Exit 77 skips (no rpmbuild).
set -euo pipefail

build=${1:?usage: test_packages.sh <build dir>}
work=$(mktemp -d /tmp/mm-packages.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0

fail() { printf 'FAIL: %s\n' "$*" >&2; fails=$((fails + 1)); }
ok() { printf 'ok: %s\n' "$*"; }

for tool in cpack dpkg-deb; do
	command -v "$tool" >/dev/null || { echo "no $tool" >&2; exit 1; }
done
if ! command -v rpmbuild >/dev/null; then
	echo "skipped: rpmbuild missing (apt-get install rpm)" >&2
	exit 77
fi

files=(
	/usr/sbin/mm-guest-agent
	/usr/lib/systemd/system/mm-guest-agent.service
	/etc/mm/guest-agent.conf
	/usr/share/man/man8/mm-guest-agent.8
)

(cd "$build" && cpack -G DEB -B "$work/out" >"$work/cpack-deb.log" 2>&1) ||
	{ cat "$work/cpack-deb.log" >&2; exit 1; }
(cd "$build" && cpack -G RPM -B "$work/out" >"$work/cpack-rpm.log" 2>&1) ||
	{ cat "$work/cpack-rpm.log" >&2; exit 1; }
deb=$(ls "$work"/out/mm-guest-agent_*.deb)
rpm=$(ls "$work"/out/mm-guest-agent-*.rpm)

# deb: contents, metadata, scripts.
dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\.||' >"$work/deb.list"
for f in "${files[@]}"; do
	grep -qx "$f" "$work/deb.list" && ok "deb has $f" || fail "deb lacks $f"
done
[[ $(dpkg-deb -f "$deb" Package) == mm-guest-agent ]] ||
	fail "deb package name is $(dpkg-deb -f "$deb" Package)"
# Static (the default) or not, the agent must not pull the bus or
# libsystemd into a guest.
if dpkg-deb -f "$deb" Depends | grep -Eq 'librabbitmq|libsystemd'; then
	fail "deb depends on $(dpkg-deb -f "$deb" Depends)"
fi
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/mm/guest-agent.conf "$work/control/conffiles" &&
	ok "deb conffile" || fail "guest-agent.conf is not a conffile"
for s in postinst prerm postrm; do
	[[ -x $work/control/$s ]] && ok "deb $s" || fail "deb lacks $s"
done

# rpm: contents, config file, scriptlets.
rpm -qlp "$rpm" >"$work/rpm.list" 2>/dev/null
for f in "${files[@]}"; do
	grep -qx "$f" "$work/rpm.list" && ok "rpm has $f" || fail "rpm lacks $f"
done
rpm -qp --configfiles "$rpm" 2>/dev/null | grep -qx /etc/mm/guest-agent.conf &&
	ok "rpm config file" || fail "guest-agent.conf is not %config in the rpm"
for s in postinstall preuninstall postuninstall; do
	rpm -qp --scripts "$rpm" 2>/dev/null | grep -q "^$s scriptlet" &&
		ok "rpm $s" || fail "rpm lacks a $s scriptlet"
done

# The maintainer scripts enable the unit and never fail, whether
# systemctl works, fails, or is absent.
mkdir -p "$work/stub"
cat >"$work/stub/systemctl" <<'STUB'
#!/bin/sh
echo "$*" >>"$STUB_LOG"
exit "${STUB_STATUS:-0}"
STUB
chmod +x "$work/stub/systemctl"
export STUB_LOG=$work/systemctl.log
for status in 0 1; do
	: >"$STUB_LOG"
	STUB_STATUS=$status PATH=$work/stub:$PATH \
		sh "$work/control/postinst" configure ||
		fail "postinst fails when systemctl exits $status"
	grep -q "^enable mm-guest-agent.service" "$STUB_LOG" ||
		fail "postinst did not enable the unit"
	STUB_STATUS=$status PATH=$work/stub:$PATH \
		sh "$work/control/prerm" remove ||
		fail "prerm fails when systemctl exits $status"
	STUB_STATUS=$status PATH=$work/stub:$PATH \
		sh "$work/control/postrm" purge ||
		fail "postrm fails when systemctl exits $status"
done
mkdir -p "$work/empty"
PATH=$work/empty /bin/sh "$work/control/postinst" configure ||
	fail "postinst fails without systemctl"
PATH=$work/empty /bin/sh "$work/control/prerm" remove ||
	fail "prerm fails without systemctl"
ok "maintainer scripts"

# The unpacked files work: config checks, one report of this machine.
dpkg-deb -x "$deb" "$work/root"
agent=$work/root/usr/sbin/mm-guest-agent
"$agent" -n -c "$work/root/etc/mm/guest-agent.conf" | grep -qx \
	"configuration OK" && ok "packaged config parses" ||
	fail "packaged config does not parse"
out=$("$agent" -d -c "$work/root/etc/mm/guest-agent.conf" --channel stdout \
	--once 2>/dev/null)
total=$(sed -n 's/.*"total_kib":\([0-9]*\).*/\1/p' <<<"$out")
want=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
[[ $total == "$want" ]] && ok "report: total_kib $total" ||
	fail "report total_kib \"$total\", /proc/meminfo says $want: $out"
grep -q '"agent_seq":0' <<<"$out" || fail "report lacks agent_seq 0: $out"

if ((fails > 0)); then
	echo "$fails check(s) failed" >&2
	exit 1
fi
echo "packages OK: $(basename "$deb") $(basename "$rpm")"
