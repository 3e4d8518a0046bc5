#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A Debian 12 root file system with systemd, for booting under
# systemd-nspawn in test_systemd.sh: minbase, systemd, and the libraries
# mm's host packages depend on (so that "dpkg -i" of the debs needs no
# mirror inside the container). Built once with mmdebstrap into the given
# directory and reused while the package list is the same.
# Usage: rootfs.sh <dir>
set -euo pipefail

dir=${1:?usage: rootfs.sh <dir>}
packages=(
	systemd systemd-sysv dbus procps iproute2 ca-certificates python3-minimal
	adduser libinih1 libjansson4 libprotobuf-c1 librabbitmq4 libuv1
	libxenstore4 libsystemd0 libvirt0 libmicrohttpd12
)
# What the stamp says was built: the packages and this script's own
# additions (bump "hosts1" when they change).
want="hosts1 $(printf '%s\n' "${packages[@]}" | sort | tr '\n' ' ')"

if [[ -f $dir.stamp && $(cat "$dir.stamp") == "$want" && -x $dir/lib/systemd/systemd ]]; then
	exit 0
fi
command -v mmdebstrap >/dev/null ||
	{ echo "rootfs.sh: no mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
rm -rf "$dir" "$dir.stamp" "$dir.tmp"
include=$(IFS=,; echo "${packages[*]}")
if ! mmdebstrap --variant=minbase --include="$include" bookworm "$dir.tmp" \
    >"$dir.log" 2>&1; then
	tail -n 20 "$dir.log" >&2
	rm -rf "$dir.tmp"
	exit 1
fi
# No getty or networkd in a test container. It shares the host's network:
# "localhost" (the test broker's certificate name) must resolve, and
# minbase has no /etc/hosts.
rm -f "$dir.tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$dir.tmp/etc/hosts"
mv "$dir.tmp" "$dir"
echo "$want" >"$dir.stamp"
