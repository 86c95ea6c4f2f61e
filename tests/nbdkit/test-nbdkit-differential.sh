#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The random differential workload of tests/io, driven by qemu-io through
# `nbdkit qed` over NBD instead of through qed-io: after each seed the image
# equals the raw reference (written by qemu-io -f raw) and passes qemu-img
# check. QED_TEST_SEEDS=N runs N seeds (default 8); QED_TEST_SEED=S one.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
. "$TESTS_DIR/io/io-common.sh"
requires qemu-img qemu-io python3

seeds=${QED_TEST_SEEDS:-8}
ops=${QED_TEST_OPS:-500}
seed_list=${QED_TEST_SEED:-$(seq 100 $((100 + seeds - 1)))}

for seed in $seed_list; do
    dir=$T/seed-$seed
    mkdir "$dir"
    eval "$(python3 "$TESTS_DIR/io/gen-workload.py" --ops "$ops" "$seed" "$dir")"
    echo "seed $seed: cluster $CLUSTER, table $TABLE, size $SIZE, backing $BACKING"
    cd "$dir"
    opts="cluster_size=$CLUSTER,table_size=$TABLE"
    case $BACKING in
    none)
        "$QED_IMG" create -q -f qed -o "$opts" img.qed "$SIZE"
        ;;
    raw | qed)
        qemu-img create -q -f raw base.raw "$BASE_SIZE"
        qemu-io -f raw base.raw <base.cmds >/dev/null
        base=base.raw
        if [ "$BACKING" = qed ]; then
            qemu-img convert -O qed base.raw base.qed
            base=base.qed
        fi
        "$QED_IMG" create -q -f qed -o "$opts" -b "$base" -F "$BACKING" img.qed "$SIZE"
        ;;
    esac
    qemu-img convert -O raw img.qed ref.raw

    serve_qed img.qed
    qemu-io -f raw "$URI" <ops.cmds >nbd.out 2>nbd.err || fail "seed $seed: qemu-io over NBD failed"
    stop_nbdkit
    qemu-io -f raw ref.raw <ops.cmds >ref.out 2>ref.err

    io_filter <nbd.out >nbd.f
    io_filter <ref.out >ref.f
    diff -u ref.f nbd.f || fail "seed $seed: output over NBD differs from the reference"
    if grep -q failed nbd.f || [ -s nbd.err ]; then
        fail "seed $seed: a request or pattern check failed: $(grep -m3 failed nbd.f; cat nbd.err)"
    fi
    qemu-img compare -q -f qed -F raw img.qed ref.raw ||
        fail "seed $seed: image differs from the reference (rerun: QED_TEST_SEED=$seed)"
    qemu-img check -q img.qed || fail "seed $seed: qemu-img check failed"
    cd "$T"
done
