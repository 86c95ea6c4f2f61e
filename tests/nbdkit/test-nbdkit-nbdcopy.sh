#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdcopy in and out through `nbdkit qed`: a raw file copied into the export
# (over several connections at once) and back out is unchanged, and the
# image passes qemu-img check and compares equal to the raw file.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires nbdcopy qemu-img qemu-io

cd "$T"
qemu-img create -q -f raw src.raw 48M
qemu-io -f raw -c 'write -q -P 0x61 0 5M' -c 'write -q -P 0x62 7M 300k' \
    -c 'write -q -P 0x63 20M 1M' -c 'write -q -P 0x64 47M 1M' src.raw
"$QED_IMG" create -q -f qed -o cluster_size=65536 disk.qed 48M

serve_qed disk.qed
nbdcopy --connections=4 src.raw "$URI"
nbdcopy "$URI" out.raw
stop_nbdkit

cmp src.raw out.raw || fail "the raw file did not survive the round trip"
qemu-img check -q disk.qed || fail "qemu-img check failed after nbdcopy"
qemu-img compare -q -f qed -F raw disk.qed src.raw || fail "image differs from source"
