#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img compare prints what qemu-img compare prints (stdout, stderr, exit
# status): identical images of other formats and allocation, mismatches in
# data, in zero and unallocated clusters and past the end of a shorter
# image, backing chains (also a backing file shorter than its overlay),
# strict mode, quiet mode, the -p progress line, and the error paths.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"
io() {
    f=$1
    shift
    for cmd in "$@"; do
        set -- "$@" -c "$cmd"
        shift
    done
    qemu-io "$f" "$@" >/dev/null
}

# a.raw: data at 64k and at 1M+1000 (odd offset), 3 MiB.
qemu-img create -q -f raw a.raw 3M
qemu-io -f raw -c 'write -P 1 64k 64k' -c 'write -P 2 1049576 3000' a.raw >/dev/null
qemu-img convert -O qed a.raw a.qed                       # the same, QED
qemu-img convert -O qed -o cluster_size=4k,table_size=2 a.raw a4k.qed
qemu-img create -q -f qed z.qed 3M                        # zero clusters where a has none
io z.qed 'write -P 1 64k 64k' 'write -P 2 1049576 3000' 'write -z 0 64k' 'write -z 2M 1M'
cp a.raw b.raw                                            # one byte differs
qemu-io -f raw -c 'write -P 9 2000000 1' b.raw >/dev/null
qemu-img create -q -f raw big.raw 5M                      # longer, zeros past 3M
qemu-io -f raw -c 'write -P 1 64k 64k' -c 'write -P 2 1049576 3000' big.raw >/dev/null
cp big.raw bigx.raw                                       # longer, data past 3M
qemu-io -f raw -c 'write -P 3 4000001 1' bigx.raw >/dev/null
qemu-img create -q -f qed bigz.qed 5M                     # longer, a zero cluster past 3M
io bigz.qed 'write -P 1 64k 64k' 'write -P 2 1049576 3000' 'write -z 4M 64k'
qemu-img create -q -f qed e.qed 3M
qemu-img create -q -f raw e.raw 3M
# A chain: a 2 MiB raw base under a 3 MiB overlay that changes some of it.
qemu-img create -q -f raw base.raw 2M
qemu-io -f raw -c 'write -P 1 0 2M' base.raw >/dev/null
qemu-img create -q -f qed -b base.raw -F raw ov.qed 3M
io ov.qed 'write -P 4 512k 64k' 'write -z 1M 64k' 'write -P 5 2500k 4k'
qemu-img convert -O raw ov.qed ov.raw                     # its flat copy
qemu-img convert -O qed ov.qed ovflat.qed
cp ov.raw ovx.raw                                         # differs below the base's end
qemu-io -f raw -c 'write -P 7 1536k 512' ovx.raw >/dev/null
cp ov.raw ovy.raw                                         # differs past it
qemu-io -f raw -c 'write -P 7 2200k 512' ovy.raw >/dev/null

pairs="a.raw:a.qed a.qed:a.raw a.qed:a4k.qed a.qed:z.qed z.qed:a.qed a.qed:b.raw b.raw:a4k.qed
a.raw:big.raw big.raw:a.qed a.qed:bigx.raw bigx.raw:a.raw a.qed:bigz.qed bigz.qed:a4k.qed
e.qed:e.raw e.raw:e.qed e.qed:e.qed a.qed:a.qed a4k.qed:a4k.qed e.qed:a.qed
ov.qed:ov.raw ov.raw:ov.qed ov.qed:ovflat.qed ov.qed:ovx.raw ovy.raw:ov.qed ov.qed:ov.qed
ov.qed:base.raw base.raw:ovflat.qed"
for pair in $pairs; do
    f1=${pair%%:*}
    f2=${pair#*:}
    compare_runs . . compare "$f1" "$f2"
    compare_runs . . compare -s "$f1" "$f2"
    compare_runs . . compare -q "$f1" "$f2"
    compare_runs . . compare -p "$f1" "$f2"
done
compare_runs . . compare -f qed -F raw a.qed a.raw
compare_runs . . compare -f raw -F raw a.qed a.raw
compare_runs . . compare -F raw ov.qed ov.raw
compare_runs . . compare -U -T none a.qed a.raw
compare_runs . . compare -T unsafe -s -q a.qed a.qed
compare_runs . . compare -p -q a.raw bigx.raw

# Errors.
compare_runs . . compare a.qed
compare_runs . . compare a.qed a.raw extra
compare_runs . . compare
compare_runs . . compare -T foo a.qed a.raw
compare_runs . . compare -f qed a.raw a.qed
compare_runs . . compare -F qed a.qed a.raw
compare_runs . . compare -f foo a.qed a.raw
compare_runs . . compare --bogus a.qed a.raw
compare_runs . . compare -f
# A missing file: the same status (qed-img says "Could not open" once,
# docs/qed-img.md).
assert_status 2 "$QED_IMG" compare a.qed missing.qed 2>/dev/null
assert_status 2 "$QED_IMG" compare missing.qed a.qed 2>/dev/null

report_mismatches
