#!/bin/sh
# A block device as backing file: qed-io and qed-img take it as qemu-io and
# qemu-img do (any local file); only a caller that asks for confinement, such
# as the nbdkit plugin's default, refuses it. Needs root and a loop device.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io losetup
[ "$(id -u)" -eq 0 ] || { echo "SKIP: losetup needs root" >&2; exit 77; }

cd "$T"
qemu-img create -q -f raw base.raw 1M
qemu-io -f raw -c 'write -q -P 0x5c 0 1M' base.raw
loop=$(losetup -f --show base.raw 2>/dev/null) || { echo "SKIP: no loop device" >&2; exit 77; }
on_exit "losetup -d $loop"

"$QED_IMG" create -q -f qed -b "$loop" -F raw over.qed
for tool in qemu-io "$QED_IO"; do
    assert_status 0 "$tool" -r -c 'read -q -P 0x5c 0 1M' over.qed
done
assert_status 0 "$QED_IO" -c 'write -q -P 0x11 64k 4k' -c 'read -q -P 0x5c 0 64k' over.qed
assert_status 0 qemu-io -r -c 'read -q -P 0x11 64k 4k' -c 'read -q -P 0x5c 68k 60k' over.qed
assert_status 0 "$QED_IMG" info --backing-chain over.qed >/dev/null
assert_status 0 qemu-img check over.qed
echo OK
