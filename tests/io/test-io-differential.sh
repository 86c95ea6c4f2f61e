#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Differential test of libqed's request paths: seeded random workloads from
# gen-workload.py run through qed-io on a QED image and through qemu-io on a
# raw reference file (never QEMU's qed driver, see docs/format.md). Both must
# print the same (masked) output, whose pattern checks must all pass, and the
# QED image must then compare equal to the reference and pass qemu-img check.
#
# The images stay far below cluster_size - 1 clusters in the file, past which
# qemu-img check on QED reports false leaks (docs/format.md).
#
# QED_TEST_SEEDS=N runs seeds 0..N-1 (default 24, four of each layout);
# QED_TEST_SEED=S runs seed S only; QED_TEST_OPS sets the workload length.
#
# QED_TEST_REMOTE=1 (the io-differential-remote test): only the seeds with a
# backing file, which is served by `nbdkit file` and named in the overlay by
# its NBD address, over a Unix socket for even seeds and TCP on a free
# localhost port for odd ones. A twin overlay over the local file takes the
# same workload, and both must end equal.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/io/io-common.sh"
requires qemu-img qemu-io python3

seeds=${QED_TEST_SEEDS:-24}
ops=${QED_TEST_OPS:-600}
remote=${QED_TEST_REMOTE:-}
[ -z "$remote" ] || requires nbdkit
if [ -n "${QED_TEST_SEED:-}" ]; then
    seed_list=$QED_TEST_SEED
else
    seed_list=$(seq 0 $((seeds - 1)))
fi

failed=""
seed_failed() {
    echo "FAIL seed $1: $2 (rerun: QED_TEST_SEED=$1 meson test -C BUILDDIR io-differential${remote:+-remote};" \
        "commands: tests/io/gen-workload.py $1 DIR)" >&2
    case " $failed " in
    *" $1 "*) ;;
    *) failed="$failed $1" ;;
    esac
}

# serve_base SEED FILE: serves FILE (read-only) with nbdkit file, over a Unix
# socket for an even seed and over TCP on a free localhost port for an odd
# one; sets BASE_URI to its NBD address. stop_nbdkit stops it.
serve_base() {
    if [ $(($1 % 2)) -eq 0 ]; then
        start_nbdkit "$T/base-$1.sock" -r file "$2"
        BASE_URI="nbd+unix:///?socket=$T/base-$1.sock"
    else
        start_nbdkit_tcp -r file "$2"
        BASE_URI=$NBDKIT_TCP_URI
    fi
}

run_seed() {
    seed=$1
    dir=$T/seed-$seed
    mkdir "$dir"
    eval "$(python3 "$TESTS_DIR/io/gen-workload.py" --ops "$ops" "$seed" "$dir")"
    echo "seed $seed: cluster $CLUSTER, table $TABLE, size $SIZE, backing $BACKING" \
        "(base size $BASE_SIZE), cache $CACHE"

    cd "$dir"
    opts="cluster_size=$CLUSTER,table_size=$TABLE"
    if [ -n "$remote" ] && [ "$BACKING" = none ]; then
        echo "seed $seed: no backing file, nothing remote to test"
        cd "$T"
        rm -rf "$dir"
        return
    fi
    case $BACKING in
    none)
        qemu-img create -q -f qed -o "$opts" img.qed "$SIZE"
        ;;
    raw)
        qemu-img create -q -f raw base.raw "$BASE_SIZE"
        qemu-io -f raw base.raw <base.cmds >/dev/null
        qemu-img create -q -f qed -o "$opts" -b base.raw -F raw img.qed "$SIZE"
        ;;
    qed)
        qemu-img create -q -f raw base.raw "$BASE_SIZE"
        qemu-io -f raw base.raw <base.cmds >/dev/null
        qemu-img convert -O qed -o cluster_size=65536 base.raw base.qed
        qemu-img create -q -f qed -o "$opts" -b base.qed -F qed img.qed "$SIZE"
        ;;
    esac
    # The reference starts as the overlay's flattened contents.
    qemu-img convert -O raw img.qed ref.raw
    if [ -n "$remote" ]; then
        # The overlay names its backing file by NBD address; its twin keeps
        # the local name.
        mv img.qed twin.qed
        base=$(ls base.qed 2>/dev/null || echo base.raw)
        serve_base "$seed" "$dir/$base"
        echo "seed $seed: backing file $base at $BASE_URI"
        qemu-img create -q -f qed -o "$opts" -b "$BASE_URI" -F "${base##*.}" img.qed "$SIZE"
        "$QED_IO" -t "$CACHE" -f qed twin.qed <ops.cmds >twin.out 2>twin.err ||
            seed_failed "$seed" "qed-io on the local twin failed"
    fi

    set +e
    "$QED_IO" -t "$CACHE" -f qed img.qed <ops.cmds >qed.out 2>qed.err
    qed_status=$?
    qemu-io -f raw ref.raw <ops.cmds >ref.out 2>ref.err
    ref_status=$?
    set -e
    cd "$T"

    io_filter <"$dir/qed.out" >"$dir/qed.out.f"
    io_filter <"$dir/ref.out" >"$dir/ref.out.f"
    if [ "$qed_status" != 0 ] || [ -s "$dir/qed.err" ]; then
        seed_failed "$seed" "qed-io exited $qed_status"
        head -20 "$dir/qed.err" >&2
    fi
    if [ "$ref_status" != 0 ] || [ -s "$dir/ref.err" ]; then
        seed_failed "$seed" "qemu-io on the raw reference exited $ref_status"
        head -20 "$dir/ref.err" >&2
    fi
    if grep -q "failed" "$dir/qed.out.f" "$dir/ref.out.f"; then
        seed_failed "$seed" "a request or pattern check failed"
        grep -n -B1 "failed" "$dir/qed.out.f" "$dir/ref.out.f" | head -20 >&2
    fi
    if ! diff -u "$dir/ref.out.f" "$dir/qed.out.f" >"$dir/out.diff"; then
        seed_failed "$seed" "qed-io's output differs from qemu-io's on the reference"
        head -40 "$dir/out.diff" >&2
    fi
    if ! qemu-img compare -q -f qed -F raw "$dir/img.qed" "$dir/ref.raw"; then
        seed_failed "$seed" "img.qed and the raw reference differ"
        qemu-img compare -f qed -F raw "$dir/img.qed" "$dir/ref.raw" >&2 || true
    fi
    if [ -n "$remote" ]; then
        qemu-img compare -q "$dir/img.qed" "$dir/twin.qed" ||
            seed_failed "$seed" "the overlay over NBD and its twin over the local file differ"
    fi
    set +e
    qemu-img check "$dir/img.qed" >"$dir/check.out" 2>&1
    check_status=$?
    set -e
    if [ "$check_status" != 0 ]; then
        seed_failed "$seed" "qemu-img check exited $check_status"
        head -20 "$dir/check.out" >&2
    fi
    [ -z "$remote" ] || stop_nbdkit
    case " $failed " in
    *" $seed "*) ;;
    *) rm -rf "$dir" ;;
    esac
}

for seed in $seed_list; do
    run_seed "$seed"
done

[ -z "$failed" ] || fail "seeds failed:$failed"
