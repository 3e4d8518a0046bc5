# SPDX-License-Identifier: Apache-2.0
# Sourced by test.sh and demo.sh: the Debian 12 packages mm builds and runs
# with, and installing those that are missing (as root; apt-get only when
# something is missing, so a rerun is quick).

mm_build_packages=(
	cmake gcc make pkg-config
	librabbitmq-dev libprotobuf-c-dev protobuf-c-compiler libuv1-dev
	libcmocka-dev libinih-dev libjansson-dev libsystemd-dev libnuma-dev
	libxen-dev libvirt-dev libmicrohttpd-dev rabbitmq-server curl iproute2 procps
	clang libclang-rt-14-dev llvm
)

# mm_install_missing PACKAGE...: install what dpkg does not have.
mm_install_missing() {
	local p missing=()
	for p in "$@"; do
		if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" \
		    2>/dev/null) != installed ]]; then
			missing+=("$p")
		fi
	done
	((${#missing[@]} > 0)) || return 0
	if ((EUID != 0)); then
		printf 'missing packages: %s (run as root, or apt-get install them)\n' \
		    "${missing[*]}" >&2
		return 1
	fi
	printf 'installing %s\n' "${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
}
