#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Trim through `nbdkit qed`: trimmed clusters read as zeros and show as a
# hole at once; the clusters given up are reclaimed when the export closes,
# so the file shrinks and qemu-img check finds no leak. Under a backing file
# a trim makes zero clusters, so the backing data never reappears.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdinfo python3

cd "$T"
"$QED_IMG" create -q -f qed disk.qed 16M
serve_qed disk.qed
qemu-io -f raw -c 'write -q -P 0x33 0 8M' -c 'write -q -P 0x44 12M 1M' -c flush "$URI"
before=$(stat -c %s disk.qed)
qemu-io -f raw -c 'discard -q 1M 4M' -c 'read -q -P 0 1M 4M' -c 'read -q -P 0x33 5M 3M' \
    "$URI" >out.txt
grep -q failed out.txt && fail "reads after trim: $(cat out.txt)"
nbdinfo --map --json "$URI" | map_from_nbdinfo_json >map.txt
grep -q "^1048576 4194304 zero$" map.txt || fail "the trimmed range is not a hole: $(cat map.txt)"
stop_nbdkit

after=$(stat -c %s disk.qed)
[ "$after" -le $((before - 4194304)) ] ||
    fail "the file did not shrink by the 4 MiB trimmed ($before -> $after bytes)"
qemu-img check disk.qed || fail "qemu-img check after trim and close"
qemu-io -f qed -r -c 'read -q -P 0x33 0 1M' -c 'read -q -P 0 1M 4M' \
    -c 'read -q -P 0x33 5M 3M' -c 'read -q -P 0x44 12M 1M' disk.qed >out2.txt
grep -q failed out2.txt && fail "QEMU reads differ after compaction: $(cat out2.txt)"

# Under a backing file: the trimmed range must not show the backing data.
qemu-img create -q -f raw base.raw 4M
qemu-io -f raw -c 'write -q -P 0x77 0 4M' base.raw
"$QED_IMG" create -q -f qed -b base.raw -F raw top.qed 4M
serve_qed top.qed
qemu-io -f raw -c 'write -q -P 0x11 0 2M' -c 'discard -q 0 3M' -c 'read -q -P 0 0 3M' \
    -c 'read -q -P 0x77 3M 1M' "$URI" >out3.txt
grep -q failed out3.txt && fail "backing data reappeared: $(cat out3.txt)"
stop_nbdkit
qemu-img check top.qed || fail "qemu-img check of the overlay after trim"
qemu-io -f qed -r -c 'read -q -P 0 0 3M' top.qed | grep -q failed && fail "QEMU sees backing data"
exit 0
