#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The qed filter passes requests to the plugin below in parallel where that
# plugin allows it, and one at a time where it does not:
# - file plugin (parallel) under the delay filter: 16 reads of 64 KiB, each
#   held 0.2 s below the filter, take about 0.2 s in parallel, 3.2 s one by
#   one;
# - probe-plugin.sh, which records calls that overlap: it sees overlaps when
#   it says "parallel" (so the probe works), none when it says
#   "serialize_requests", although nbdkit then serializes requests per
#   connection only and two connections share the filter's one context;
# and the data written either way is what QEMU writes, in a clean image.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy
[ -f "$FILTER" ] || fail "$FILTER was not built"
cd "$T"

# A fully allocated 1 MiB image: every 64 KiB read is one read below.
"$QED_IMG" create -q -f qed -o cluster_size=65536 full.qed 1M
qemu-io -f qed -c 'write -q -P 0x42 0 1M' full.qed
qemu-img convert -O raw full.qed full.raw

start_nbdkit "$SOCK" --filter="$FILTER" --filter=delay file full.qed delay-read=200ms
qemu-io -f raw -r -c 'read -q 0 512' "$URI" # the L2 table is cached from here on
start=$(date +%s%N)
nbdcopy --connections=1 --requests=16 --request-size=65536 "$URI" copy.raw
ms=$((($(date +%s%N) - start) / 1000000))
stop_nbdkit
assert_same_bytes copy.raw full.raw
echo "16 delayed reads took $ms ms"
[ "$ms" -lt 1600 ] || fail "16 reads of 0.2 s each took $ms ms: not in parallel"

# probe_run MODEL: writes and reads through the filter over probe-plugin.sh
# with thread model MODEL, from two connections at once; the image must
# end up as QEMU writes it. Leaves the overlapping calls in overlaps.
probe_run() {
    rm -rf probe overlaps.txt
    mkdir probe
    "$QED_IMG" create -q -f qed -o cluster_size=65536 probe/disk.qed 1M
    qemu-io -f qed -c 'write -q -P 0x42 0 512k' probe/disk.qed
    truncate -s 2M probe/disk.qed # room for the new clusters
    cp probe/disk.qed ref.qed
    PROBE_DIR=$T/probe PROBE_MODEL=$1 \
        start_nbdkit "$SOCK" --filter="$FILTER" sh "$TESTS_DIR/nbdkit/probe-plugin.sh"
    qemu-io -f raw -c 'write -q -P 0x17 512k 64k' -c 'write -q -P 0x18 640k 128k' \
        -c 'aio_write -q -P 0x19 4096 8192' -c 'aio_write -q -P 0x1a 200k 8k' \
        -c 'aio_flush' -c 'flush' "$URI" >writes.txt 2>&1 &
    writer=$!
    nbdcopy --connections=1 --requests=16 --request-size=65536 "$URI" copy.raw
    nbdcopy --connections=2 --requests=8 --request-size=32768 "$URI" copy2.raw
    wait "$writer" || fail "writes through the filter failed: $(cat writes.txt)"
    nbdcopy "$URI" final.raw
    stop_nbdkit
    [ ! -e probe/overlaps ] || cp probe/overlaps overlaps.txt
    qemu-io -f qed -c 'write -q -P 0x17 512k 64k' -c 'write -q -P 0x18 640k 128k' \
        -c 'write -q -P 0x19 4096 8192' -c 'write -q -P 0x1a 200k 8k' ref.qed
    qemu-img compare -q -f raw -F qed final.raw ref.qed ||
        fail "$1: what the filter served differs from what QEMU wrote"
    qemu-img compare -q -f qed -F qed probe/disk.qed ref.qed ||
        fail "$1: the image differs from what QEMU wrote"
    set +e
    qemu-img check -q probe/disk.qed # the container's padding reads as leaks
    status=$?
    set -e
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || fail "$1: qemu-img check exited $status"
}

probe_run parallel
[ -s overlaps.txt ] || fail "a parallel plugin saw no overlapping calls"
echo "parallel: $(wc -l <overlaps.txt) calls overlapped another"

probe_run serialize_requests
[ ! -e overlaps.txt ] ||
    fail "serialize_requests: calls overlapped: $(sort overlaps.txt | uniq -c)"
