#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Several clients at once: four qemu-io processes write disjoint stripes,
# with FUA and flushes, through one export; every byte lands, and the image
# is clean and equal to a raw file written the same way.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdinfo

cd "$T"
"$QED_IMG" create -q -f qed -o cluster_size=4096 disk.qed 16M
qemu-img create -q -f raw ref.raw 16M

serve_qed disk.qed
nbdinfo --can multi-conn "$URI" || fail "the export does not advertise multi-conn"
nbdinfo --can fua "$URI" || fail "the export does not advertise FUA"

# Client i writes 4 KiB + 100 bytes at i*4 MiB + k*12 KiB: unaligned, in its
# own stripe, allocating clusters beside the other clients' clusters.
client_cmds() {
    i=$1
    k=0
    while [ "$k" -lt 300 ]; do
        off=$((i * 4194304 + k * 12288 + 100))
        flags=""
        [ $((k % 7)) -eq 0 ] && flags="-f"
        echo "write -q $flags -P $((i * 40 + k % 40 + 1)) $off 4196"
        [ $((k % 50)) -eq 0 ] && echo "flush"
        k=$((k + 1))
    done
}
pids=""
for i in 0 1 2 3; do
    client_cmds "$i" >"c$i.cmds"
    qemu-io -f raw "$URI" <"c$i.cmds" >"c$i.out" 2>&1 &
    pids="$pids $!"
done
for p in $pids; do
    wait "$p" || fail "a client failed: $(cat c*.out)"
done
stop_nbdkit

for i in 0 1 2 3; do
    qemu-io -f raw ref.raw <"c$i.cmds" >/dev/null
done
qemu-img check -q disk.qed || fail "qemu-img check failed"
qemu-img compare -q -f qed -F raw disk.qed ref.raw || fail "image differs from reference"
