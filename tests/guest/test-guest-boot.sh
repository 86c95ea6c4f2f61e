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
# GUEST_BACKING=remote (the guest-boot-remote test): one golden image on a
# web server, a VM overlay on the host. The golden raw image is served by
# nginx; `nbdkit curl` turns it into an NBD export on a Unix socket; the
# overlay's backing file is that export's URI, and `nbdkit qed
# backing-remote=true` serves the overlay to the guest. Also checked: the
# overlay names the URI, nginx served byte ranges of the golden image during
# the boot, and QEMU follows the same NBD backing file.
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
remote=${GUEST_BACKING:-}
if [ -n "$remote" ] && ! nbdkit curl --dump-plugin >/dev/null 2>&1; then
    echo "SKIP: nbdkit's curl plugin is not installed (apt-get install nbdkit)" >&2
    exit 77
fi

"$guest/get-kernel.sh" "$cache" || fail "get-kernel.sh $cache failed"
"$guest/make-initramfs.sh" "$cache" || fail "make-initramfs.sh $cache failed"

cd "$T"
mkdir www
head -c 64M /dev/urandom >www/base.raw
base_sum=$(sha256sum <www/base.raw)
if [ -n "$remote" ]; then
    start_nginx www
    golden_sock=$T/golden.sock
    backing="nbd+unix:///?socket=$golden_sock"
    start_nbdkit "$golden_sock" -r curl url="$HTTP_URL/base.raw"
    golden_pid=$NBDKIT_PID
    "$QED_IMG" create -q -f qed -b "$backing" -F raw disk.qed 4G
    named=$(qemu-img info --output=json disk.qed |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["backing-filename"])')
    [ "$named" = "$backing" ] || fail "disk.qed's backing file is '$named', not '$backing'"
    serve_qed disk.qed backing-remote=true
else
    "$QED_IMG" create -q -f qed -b www/base.raw -F raw disk.qed 4G
    serve_qed disk.qed
fi
"$guest/boot.sh" "$cache" "$URI" >console.log 2>&1 || {
    cat console.log
    fail "the guest did not verify its files (console above)"
}
sed 's/^/console: /' console.log
# The guest's reads of what it had not written came from nginx: byte ranges
# of the golden image (206 Partial Content), before the host read anything.
if [ -n "$remote" ] && ! grep -q '"GET /base.raw HTTP/1.1" 206 ' nginx/access.log; then
    fail "nginx served no range of base.raw during the boot (access log: $(tail -n3 nginx/access.log))"
fi
# libqed's view of the disk, read over NBD while the plugin still serves it.
qemu-img convert -f raw -O raw "$URI" flat-libqed.raw
stop_nbdkit

qemu-img check -f qed disk.qed || fail "qemu-img check disk.qed failed"
qemu-img convert -f qed -O raw disk.qed flat.raw
# Both are sparse; compare skips the holes that cmp would read.
qemu-img compare -q -f raw -F raw flat-libqed.raw flat.raw ||
    fail "the disk reads differently through libqed and through QEMU's qed driver"
if [ -n "$remote" ]; then
    kill "$golden_pid" # (QEMU followed the same NBD backing file above)
    wait "$golden_pid" 2>/dev/null || true
    stop_nginx
fi
[ "$(sha256sum <www/base.raw)" = "$base_sum" ] || fail "the backing file base.raw changed"

e2fsck -fn flat.raw || fail "e2fsck -fn found errors in the guest's filesystem"
debugfs -R "rdump /data $T" flat.raw 2>/dev/null
[ -s data/SHA256SUMS ] || fail "debugfs could not extract /data/SHA256SUMS"
[ "$(wc -l <data/SHA256SUMS)" -eq "$nfiles" ] ||
    fail "the manifest lists $(wc -l <data/SHA256SUMS) files, not $nfiles"
(cd data && sha256sum --quiet -c SHA256SUMS) || fail "files extracted on the host do not match"
echo "guest-boot${remote:+-remote}: $nfiles files verified in the guest and on the host"
