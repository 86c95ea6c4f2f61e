#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Boots the guest-boot guest under QEMU (TCG) with one virtio disk, prints its
# serial console as it runs, and exits 0 only if the guest printed
# GUEST-RESULT: OK. The guest formats the disk: give it a scratch image.
#
# Usage: boot.sh CACHE_DIR DRIVE_SPEC
#   CACHE_DIR   prepared by get-kernel.sh and make-initramfs.sh
#   DRIVE_SPEC  what QEMU's -drive file= takes, opened as raw: an NBD URI such
#               as nbd+unix:///?socket=/tmp/disk.sock, or a raw file
# Environment: GUEST_TIMEOUT, seconds before the guest is killed (default 180).
set -eu

if [ $# -ne 2 ]; then
    echo "usage: $0 CACHE_DIR DRIVE_SPEC" >&2
    exit 2
fi
cache=$1
drive=$2

for f in "$cache/vmlinux" "$cache/initramfs.cpio.gz"; do
    if [ ! -s "$f" ]; then
        echo "boot: $f is missing (run get-kernel.sh and make-initramfs.sh)" >&2
        exit 2
    fi
done

log=$(mktemp "${TMPDIR:-/tmp}/guest-console.XXXXXX")
trap 'rm -f "$log" "$log.status"' EXIT INT TERM

# QEMU's option parser needs a comma inside a value doubled.
drive_escaped=$(printf '%s' "$drive" | sed 's/,/,,/g')

# q35 with the uncompressed vmlinux boots through PVH (no decompressor);
# qboot is a firmware that only loads the kernel and prints nothing.
# panic=-1 and -no-reboot end QEMU if the guest's init dies.
{
    set +e
    timeout -k 5 "${GUEST_TIMEOUT:-180}" qemu-system-x86_64 \
        -machine q35 -accel tcg -m 512M -smp 1 -bios qboot.rom \
        -nographic -nodefaults -serial stdio -no-reboot \
        -kernel "$cache/vmlinux" -initrd "$cache/initramfs.cpio.gz" \
        -append "console=ttyS0 quiet panic=-1" \
        -drive "file=$drive_escaped,format=raw,if=virtio" </dev/null 2>&1
    echo $? >"$log.status"
} | tr -d '\r' | tee "$log"

if grep -q '^GUEST-RESULT: OK' "$log"; then
    exit 0
fi
status=$(cat "$log.status")
case $status in
124 | 137) echo "boot: the guest did not finish within ${GUEST_TIMEOUT:-180} s" >&2 ;;
0) echo "boot: the guest powered off without reporting GUEST-RESULT: OK" >&2 ;;
*) echo "boot: qemu-system-x86_64 failed (exit status $status)" >&2 ;;
esac
exit 1
