#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Acceptance: a Linux guest boots under QEMU with a QED overlay (over a raw
# backing file) served by `nbdkit qed` as its virtio disk, makes an ext4
# filesystem on it, writes 300 files with a checksum manifest and verifies
# them after a remount. Then on the host the image passes qemu-img check, its
# contents read the same through libqed (over NBD) and through QEMU's qed
# driver, the filesystem passes e2fsck, every file matches its checksum, and
# the backing file is unchanged.
#
# First run on a fresh machine installs QEMU and friends (apt-get) and fetches
# a Debian kernel into ${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest
# (see docs/guest-boot.md).
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"

guest=$SRCDIR/scripts/guest
cache=${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest
nfiles=300

"$guest/install-guest-deps.sh" || echo "install-guest-deps.sh failed; using what is installed" >&2
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "SKIP: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)" >&2
    exit 77
fi
requires qemu-img e2fsck debugfs sha256sum

"$guest/get-kernel.sh" "$cache" || fail "get-kernel.sh $cache failed"
"$guest/make-initramfs.sh" "$cache" || fail "make-initramfs.sh $cache failed"

cd "$T"
head -c 64M /dev/urandom >base.raw
base_sum=$(sha256sum <base.raw)
"$QED_IMG" create -q -f qed -b base.raw -F raw disk.qed 4G

serve_qed disk.qed
"$guest/boot.sh" "$cache" "$URI" >console.log 2>&1 || {
    cat console.log
    fail "the guest did not verify its files (console above)"
}
sed 's/^/console: /' console.log
# libqed's view of the disk, read over NBD while the plugin still serves it.
qemu-img convert -f raw -O raw "$URI" flat-libqed.raw
stop_nbdkit

qemu-img check -f qed disk.qed || fail "qemu-img check disk.qed failed"
qemu-img convert -f qed -O raw disk.qed flat.raw
# Both are sparse; compare skips the holes that cmp would read.
qemu-img compare -q -f raw -F raw flat-libqed.raw flat.raw ||
    fail "the disk reads differently through libqed and through QEMU's qed driver"
[ "$(sha256sum <base.raw)" = "$base_sum" ] || fail "the backing file base.raw changed"

e2fsck -fn flat.raw || fail "e2fsck -fn found errors in the guest's filesystem"
debugfs -R "rdump /data $T" flat.raw 2>/dev/null
[ -s data/SHA256SUMS ] || fail "debugfs could not extract /data/SHA256SUMS"
[ "$(wc -l <data/SHA256SUMS)" -eq "$nfiles" ] ||
    fail "the manifest lists $(wc -l <data/SHA256SUMS) files, not $nfiles"
(cd data && sha256sum --quiet -c SHA256SUMS) || fail "files extracted on the host do not match"
echo "guest-boot: $nfiles files verified in the guest and on the host"
