#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fetches a Debian kernel for the guest-boot test from Debian's own archive
# (apt-get download, no other network) and keeps in CACHE_DIR what the guest
# needs: the kernel as an uncompressed ELF vmlinux (QEMU boots it through PVH,
# skipping the bzImage decompressor) and the modules for a virtio disk with
# ext4, with their load order. A cache that is already complete is reused
# without touching the network.
#
# Usage: get-kernel.sh [CACHE_DIR]   (default ${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest)
#
# CACHE_DIR afterwards holds:
#   vmlinux            the kernel, ELF with a PVH entry note
#   modules/*.ko       the modules, uncompressed
#   modules.load       their names, one a line, in the order to insmod them
#   kernel-version     e.g. 6.1.0-56-amd64; written last, marks the cache complete
set -eu

cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest}

# The guest loads these (and what they depend on) in this order. crc32c is
# ext4's checksum (a soft dependency that modprobe resolves); the generic one
# works on any CPU model that TCG emulates.
wanted="crc32c_generic virtio_pci virtio_blk ext4"

if [ -s "$cache/kernel-version" ] && [ -s "$cache/vmlinux" ] && [ -s "$cache/modules.load" ]; then
    exit 0
fi

die() {
    echo "get-kernel: $*" >&2
    exit 1
}

for cmd in apt-get apt-cache dpkg-deb depmod modprobe xz; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed"
done

# linux-image-amd64 is the metapackage; it depends on the versioned image.
find_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}
pkg=$(find_package)
if [ -z "$pkg" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    pkg=$(find_package)
fi
[ -n "$pkg" ] || die "apt-cache depends linux-image-amd64 names no linux-image-*-amd64 package"

work=$(mktemp -d "${TMPDIR:-/tmp}/get-kernel.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
echo "get-kernel: downloading $pkg" >&2
# Run as the invoking user: apt's sandbox user (_apt) cannot write into $work.
(cd "$work" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" "$pkg" >/dev/null) ||
    die "apt-get download $pkg failed"
dpkg-deb -x "$work"/"$pkg"_*.deb "$work/root"
version=$(ls "$work/root/lib/modules")
[ -n "$version" ] || die "$pkg contains no /lib/modules/VERSION"
vmlinuz=$work/root/boot/vmlinuz-$version

# The bzImage carries the kernel as an xz stream after its decompressor
# (Debian builds with CONFIG_KERNEL_XZ): find the stream's magic and unpack
# it; the result is the ELF vmlinux.
offset=$(LC_ALL=C grep -abo -P '\xfd7zXZ\x00' "$vmlinuz" | head -n 1 | cut -d: -f1)
[ -n "$offset" ] || die "$vmlinuz: no xz stream found (is the kernel not xz-compressed?)"
tail -c +"$((offset + 1))" "$vmlinuz" | xz -dc --single-stream >"$work/vmlinux" 2>/dev/null ||
    die "$vmlinuz: the xz stream at offset $offset does not decompress"
[ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = "177ELF" ] ||
    die "$vmlinuz: the decompressed kernel is not an ELF file"

# The package has no modules.dep (the postinst makes it): build one.
depmod -b "$work/root" -F "$work/root/boot/System.map-$version" "$version"
mkdir -p "$work/modules"
: >"$work/modules.load"
for m in $wanted; do
    modprobe -d "$work/root" -S "$version" --show-depends "$m" |
        sed -n 's/^insmod \([^ ]*\) *$/\1/p'
done | while read -r path; do
    name=$(basename "$path" .ko)
    # crc32c-intel needs SSE4.2, which TCG's default CPU lacks.
    [ "$name" = crc32c-intel ] && continue
    grep -qx "$name" "$work/modules.load" && continue
    cp "$path" "$work/modules/$name.ko"
    echo "$name" >>"$work/modules.load"
done
for m in $wanted; do
    grep -qx "$m" "$work/modules.load" || die "$pkg: no module $m (or one it needs) found"
done

mkdir -p "$cache"
rm -rf "$cache/modules"
mv "$work/modules" "$cache/modules"
mv "$work/modules.load" "$cache/modules.load"
mv "$work/vmlinux" "$cache/vmlinux"
echo "$version" >"$cache/kernel-version"
