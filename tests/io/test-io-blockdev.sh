#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Block devices: as backing file, qed-io and qed-img take one as qemu-io and
# qemu-img do (any local file; only a caller that asks for confinement, such
# as the nbdkit plugin's default, refuses it). As the image itself, a QED
# image on a block device is a container of fixed size: created in place,
# written until it is full (ENOSPC, nothing corrupt), and QEMU reads it back.
# Needs root and loop devices.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io losetup
[ "$(id -u)" -eq 0 ] || { echo "SKIP: losetup needs root" >&2; exit 77; }

cd "$T"
# attach FILE: sets $dev to a loop device now backing FILE, detached on exit
# (not in a command substitution, whose subshell would lose the on_exit).
attach() {
    dev=$(losetup -f --show "$1" 2>/dev/null) || { echo "SKIP: no loop device" >&2; exit 77; }
    on_exit "losetup -d $dev"
}

# --- a block device as backing file ------------------------------------------
qemu-img create -q -f raw base.raw 1M
qemu-io -f raw -c 'write -q -P 0x5c 0 1M' base.raw
attach base.raw
"$QED_IMG" create -q -f qed -b "$dev" -F raw over.qed
for tool in qemu-io "$QED_IO"; do
    assert_status 0 "$tool" -r -c 'read -q -P 0x5c 0 1M' over.qed
done
assert_status 0 "$QED_IO" -c 'write -q -P 0x11 64k 4k' -c 'read -q -P 0x5c 0 64k' over.qed
assert_status 0 qemu-io -r -c 'read -q -P 0x11 64k 4k' -c 'read -q -P 0x5c 68k 60k' over.qed
assert_status 0 "$QED_IMG" info --backing-chain over.qed >/dev/null
assert_status 0 qemu-img check over.qed

# --- a QED image on a block device --------------------------------------------
truncate -s 4M dev.img
head -c 4M /dev/urandom >dev.img    # old contents past the image must not show
attach dev.img
assert_status 0 "$QED_IMG" create -q -f qed -o cluster_size=4k "$dev" 8M
assert_status 0 "$QED_IO" -f qed -c 'write -q -P 0x21 0 1M' -c 'write -q -P 0x22 1M 1M' \
    -c 'read -q -P 0x21 0 1M' -c 'read -q -P 0 6M 64k' "$dev"
# Fill it: the write that does not fit fails with ENOSPC, cleanly.
set +e
"$QED_IO" -f qed -c 'write -q -P 0x23 2M 4M' "$dev" >out.txt 2>&1
status=$?
set -e
[ "$status" -eq 1 ] || fail "filling the device: exited $status"
grep -q "No space left on device" out.txt || fail "filling the device: $(cat out.txt)"
assert_status 0 qemu-io -f qed -r -c 'read -q -P 0x21 0 1M' -c 'read -q -P 0x22 1M 1M' "$dev"
# Leaks at most: the unused tail of the device.
set +e
qemu-img check -f qed "$dev" >check.txt 2>&1
status=$?
set -e
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || fail "qemu-img check exited $status: $(cat check.txt)"
echo OK
