#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Extents: `nbdinfo --map` of the export describes the same data and zero
# ranges as `qemu-img map` of the image file, through a raw backing file
# with holes, data clusters, zero clusters and trimmed clusters.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires nbdinfo qemu-img qemu-io python3

cd "$T"
qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c 'write -q -P 0xaa 1M 2M' -c 'write -q -P 0xbb 6M 64k' base.raw
"$QED_IMG" create -q -f qed -b base.raw -F raw disk.qed 16M

serve_qed disk.qed
qemu-io -f raw -c 'write -q -P 0x11 0 64k' -c 'write -q -z 2M 256k' \
    -c 'write -q -P 0x22 12M 100k' -c 'discard -q 1536k 64k' "$URI"
nbdinfo --map --json "$URI" | map_from_nbdinfo_json >nbd.map
stop_nbdkit

qemu-img map --output=json disk.qed | map_from_qemu_json >qemu.map
diff -u qemu.map nbd.map || fail "nbdinfo --map differs from qemu-img map"
grep -q "data" nbd.map && grep -q "zero" nbd.map || fail "map lacks data or zero ranges"
qemu-img check -q disk.qed || fail "qemu-img check failed"
