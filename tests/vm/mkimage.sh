#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build the test guests' boot files in the build tree (never in git):
#   mkimage.sh kernel <dir>
#     Debian's kernel package (the one linux-image-amd64 depends on, or
#     $MM_VM_KERNEL_PKG) fetched with apt-get download and unpacked with
#     dpkg -x; leaves <dir>/vmlinux (the uncompressed ELF, booted through
#     its PVH entry: no decompression under TCG), <dir>/vmlinuz, and the
#     virtio modules the guest needs plus their dependencies in
#     <dir>/modules/ with <dir>/modules/order (load order). Cached: a second
#     run with the same package does nothing.
#   mkimage.sh initramfs <kernel-dir> <out.cpio> <init> <program>...
#     A busybox initramfs (uncompressed newc cpio) with <init> as /init, the
#     modules, and the programs (static binaries) in /bin.
set -euo pipefail

say() { printf 'mkimage: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# The guest needs these; virtio_pci pulls virtio, virtio_ring and the
# modern/legacy device helpers; zram (with zsmalloc) is the swap proactive
# reclaim compresses into.
wanted_modules=(virtio_pci virtio_balloon virtio_console zram)

kernel_package() {
	local pkg=${MM_VM_KERNEL_PKG:-}

	if [[ -z $pkg ]]; then
		pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
		    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' |
		    head -n1)
	fi
	[[ -n $pkg ]] || die "no Debian kernel package: apt-cache depends" \
	    "linux-image-amd64 names none (apt-get update?)"
	printf '%s\n' "$pkg"
}

download() {
	(cd "$1" && apt-get download -q "$2" 2>&1) |
	    grep -v 'Download is performed unsandboxed' >&2
	ls "$1"/*.deb > /dev/null 2>&1
}

# The depends= entry of a module's .modinfo section, as modinfo prints it.
module_depends() {
	tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',' ' '
}

add_module() {
	local name=$1 f dep

	[[ " ${loaded[*]} " == *" $name "* ]] && return 0
	f=$(find "$moddir" -name "$name.ko" -o -name "$name.ko.xz" | head -n1)
	[[ -n $f ]] || die "module $name not in $moddir"
	if [[ $f == *.xz ]]; then
		xz -dc "$f" > "$out/modules/$name.ko"
	else
		cp "$f" "$out/modules/$name.ko"
	fi
	for dep in $(module_depends "$out/modules/$name.ko"); do
		add_module "$dep"
	done
	loaded+=("$name")
	printf '%s\n' "$name" >> "$out/modules/order"
}

build_kernel() {
	local out=$1 pkg deb ver pos tmp moddir m
	local -a loaded=()

	pkg=$(kernel_package)
	# The stamp names the package and the modules taken from it.
	if [[ -f $out/stamp && $(cat "$out/stamp") == "$pkg ${wanted_modules[*]}" ]]; then
		return 0
	fi
	say "fetching $pkg"
	tmp=$out/tmp
	rm -rf "$tmp" "$out/stamp" "$out/modules"
	mkdir -p "$tmp" "$out/modules"
	chmod 755 "$tmp"
	# An old package list may name a version the mirror dropped: refresh
	# it once (as root) and retry.
	if ! download "$tmp" "$pkg"; then
		((EUID == 0)) || die "apt-get download $pkg failed"
		apt-get update -q >&2
		pkg=$(kernel_package)
		download "$tmp" "$pkg" || die "apt-get download $pkg failed"
	fi
	deb=$(ls "$tmp"/*.deb)
	dpkg -x "$deb" "$tmp/root"
	ver=$(ls "$tmp/root/lib/modules")
	cp "$tmp/root/boot/vmlinuz-$ver" "$out/vmlinuz"
	# scripts/extract-vmlinux: Debian compresses with xz; the payload
	# starts at the first xz magic (fd 37 7a 58 5a 00).
	pos=$(LC_ALL=C grep -abo $'\xfd7zXZ' "$out/vmlinuz" | head -n1 |
	    cut -d: -f1)
	[[ -n $pos ]] || die "no xz payload in vmlinuz-$ver"
	tail -c +$((pos + 1)) "$out/vmlinuz" | xz -dc > "$out/vmlinux" \
	    2>/dev/null || true
	[[ $(head -c4 "$out/vmlinux" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] ||
	    die "could not extract an ELF vmlinux from vmlinuz-$ver"
	moddir=$tmp/root/lib/modules/$ver
	for m in "${wanted_modules[@]}"; do
		add_module "$m"
	done
	printf '%s\n' "$ver" > "$out/version"
	rm -rf "$tmp"
	printf '%s\n' "$pkg ${wanted_modules[*]}" > "$out/stamp"
	say "kernel $ver: $(wc -l < "$out/modules/order") modules" \
	    "($(tr '\n' ' ' < "$out/modules/order"))"
}

build_initramfs() {
	local kdir=$1 cpio_out=$2 init=$3 root p
	shift 3

	[[ -f $kdir/stamp ]] || die "no kernel in $kdir"
	root=$(mktemp -d "${cpio_out}.root.XXXXXX")
	staging=$root
	trap 'rm -rf "$staging"' EXIT
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,etc,lib/modules}
	# ldd fails on a static binary, saying so.
	[[ $(LC_ALL=C ldd /bin/busybox 2>&1 || true) == *'not a dynamic'* ]] ||
	    die "/bin/busybox is not static (install busybox-static)"
	cp /bin/busybox "$root/bin/busybox"
	cp "$kdir"/modules/*.ko "$kdir/modules/order" "$root/lib/modules/"
	cp "$init" "$root/init"
	chmod 755 "$root/init"
	for p in "$@"; do
		cp "$p" "$root/bin/"
	done
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) \
	    > "$cpio_out.tmp"
	mv "$cpio_out.tmp" "$cpio_out"
}

case ${1:-} in
kernel)
	[[ $# -eq 2 ]] || die "usage: mkimage.sh kernel <dir>"
	mkdir -p "$2"
	build_kernel "$2"
	;;
initramfs)
	[[ $# -ge 4 ]] || die "usage: mkimage.sh initramfs <kernel-dir>" \
	    "<out.cpio> <init> <program>..."
	build_initramfs "$2" "$3" "$4" "${@:5}"
	;;
*)
	die "usage: mkimage.sh kernel <dir> | initramfs <kernel-dir>" \
	    "<out.cpio> <init> <program>..."
	;;
esac
