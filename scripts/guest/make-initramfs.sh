#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the guest-boot initramfs, CACHE_DIR/initramfs.cpio.gz: a static
# busybox, the modules that get-kernel.sh put in CACHE_DIR, e2fsprogs' mke2fs
# with the shared libraries and dynamic loader it needs, and guest-init.sh as
# /init. Needs no root: device nodes come from devtmpfs at boot.
#
# Usage: make-initramfs.sh [CACHE_DIR]   (run get-kernel.sh CACHE_DIR first)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest}

die() {
    echo "make-initramfs: $*" >&2
    exit 1
}

[ -s "$cache/modules.load" ] || die "$cache has no modules.load (run get-kernel.sh $cache first)"
busybox=$(command -v busybox) || die "busybox is not installed (apt-get install busybox-static)"
# busybox-static's binary replaces busybox's; a dynamic one would need its libc.
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
    ldd "$busybox" 2>&1 | grep -q 'not a dynamic executable' ||
    die "$busybox is not static (apt-get install busybox-static)"
mke2fs=$(command -v mke2fs || echo /sbin/mke2fs)
[ -x "$mke2fs" ] || die "mke2fs is not installed (apt-get install e2fsprogs)"
for cmd in cpio gzip ldd; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd is not installed"
done

root=$(mktemp -d "${TMPDIR:-/tmp}/make-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT INT TERM

mkdir -p "$root/bin" "$root/sbin" "$root/dev" "$root/proc" "$root/sys" "$root/mnt" \
    "$root/tmp" "$root/etc" "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
cp "$here/guest-init.sh" "$root/init"
chmod 0755 "$root/init"
cp "$cache/modules.load" "$root/modules.load"
while read -r m; do
    cp "$cache/modules/$m.ko" "$root/lib/modules/$m.ko"
done <"$cache/modules.load"

# mke2fs and every library ldd resolves for it (the loader included), each
# at the path the loader looks for it.
cp "$mke2fs" "$root/sbin/mke2fs"
ldd "$mke2fs" | sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p' |
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/mke2fs.conf"

out=$cache/initramfs.cpio.gz
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$out.tmp.$$"
mv "$out.tmp.$$" "$out"
