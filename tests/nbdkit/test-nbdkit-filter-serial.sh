#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Below a plugin that takes one request at a time in the whole server
# (serialize_all_requests), the qed filter's calls never overlap, including
# those libqed makes outside any request: 5 s after the last allocation its
# cleaner marks the image clean (a header write and flushes) while clients
# keep reading. probe-plugin.sh records overlapping calls.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy
[ -f "$FILTER" ] || fail "$FILTER was not built"
cd "$T"

# The header's feature bits (offset 16, little-endian); NEED_CHECK is 2.
need_check() {
    [ $(($(od -An -tu1 -j16 -N1 probe/disk.qed) & 2)) -ne 0 ]
}

mkdir probe
"$QED_IMG" create -q -f qed -o cluster_size=65536 probe/disk.qed 1M
truncate -s 2M probe/disk.qed # room for the new clusters
PROBE_DIR=$T/probe PROBE_MODEL=serialize_all_requests \
    start_nbdkit "$SOCK" --filter="$FILTER" sh "$TESTS_DIR/nbdkit/probe-plugin.sh"
qemu-io -f raw -c 'write -q -P 0x61 0 192k' -c 'write -q -P 0x62 512k 64k' "$URI" >writes.txt
grep -q failed writes.txt && fail "writes through the filter failed: $(cat writes.txt)"
need_check || fail "the image is not marked dirty after allocating writes"

# Read without pause until the cleaner has marked the image clean.
: >reading
(
    while [ -e reading ]; do
        nbdcopy --connections=2 --requests=4 --request-size=65536 "$URI" copy.raw ||
            echo "nbdcopy failed" >read-errors.txt
    done
) &
reader=$!
i=0
while need_check; do
    i=$((i + 1))
    [ "$i" -lt 150 ] || fail "the cleaner did not mark the image clean within 15 s"
    sleep 0.1
done
sleep 0.5
rm reading
wait "$reader"
[ ! -e read-errors.txt ] || fail "reads failed while the cleaner ran"
stop_nbdkit

[ ! -e probe/overlaps ] ||
    fail "calls into the plugin overlapped: $(sort probe/overlaps | uniq -c)"
qemu-img create -q -f raw ref.raw 1M
qemu-io -f raw -c 'write -q -P 0x61 0 192k' -c 'write -q -P 0x62 512k 64k' ref.raw
qemu-img compare -q -f raw -F raw copy.raw ref.raw || fail "reads differ from what was written"
qemu-img compare -q -f qed -F raw probe/disk.qed ref.raw || fail "the image differs"
set +e
qemu-img check -q probe/disk.qed # the container's padding reads as leaks
status=$?
set -e
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || fail "qemu-img check exited $status"
