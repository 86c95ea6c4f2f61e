#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img snapshot and bitmap answer as qemu-img 7.2 does for QED and raw
# images (which hold neither snapshots nor persistent bitmaps): the same
# output, errors and exit status for every action and the argument errors,
# and the image is left byte for byte as it was. qemu-img names its
# internal node ("#blockNNN") where qed-img names the file: masked.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io cmp

cd "$T"
qemu-img create -q -f qed a.qed 1M
qemu-io -c 'write -P 1 0 64k' a.qed >/dev/null
qemu-img create -q -f raw a.raw 1M
cp a.qed a.qed.orig
cp a.raw a.raw.orig

# compare_masked ARGS...: compare_runs with qemu-img's node names replaced
# by the image's file name (the argument before the bitmap name).
compare_masked() {
    file=$(for a in "$@"; do :; done; eval "echo \${$(($# - 1))}")
    cases=$((cases + 1))
    set +e
    qemu-img "$@" >q.out 2>q.err
    qs=$?
    "$QED_IMG" "$@" >o.out 2>o.err
    os=$?
    set -e
    sed "s/qemu-img/qed-img/g; s/#block[0-9]*/$file/" q.err >q.err.norm
    diff -u q.out o.out >&2 || mismatch "$*: stdout differs"
    diff -u q.err.norm o.err >&2 || mismatch "$*: stderr differs"
    [ "$qs" -eq "$os" ] || mismatch "$*: qemu-img exited $qs, qed-img $os"
}

for img in a.qed a.raw; do
    compare_runs . . snapshot -l "$img"
    compare_runs . . snapshot "$img"
    compare_runs . . snapshot -q -l "$img"
    compare_runs . . snapshot -U -l "$img"
    compare_runs . . snapshot -c s1 "$img"
    compare_runs . . snapshot -q -c s1 "$img"
    compare_runs . . snapshot -c '' "$img"
    compare_runs . . snapshot -a s1 "$img"
    compare_runs . . snapshot -d s1 "$img"
    compare_runs . . snapshot -U -c s1 "$img"
    compare_runs . . snapshot -l -c s1 "$img"
    compare_runs . . snapshot -f qed -l "$img"
    for action in --add --remove --clear --enable --disable "--merge c" "--remove --add" \
        "--add --disable"; do
        # shellcheck disable=SC2086
        compare_masked bitmap $action "$img" b
        # shellcheck disable=SC2086
        compare_masked bitmap $action "$img" ''
    done
    compare_masked bitmap --add -g 64k "$img" b
    compare_masked bitmap --add --granularity 512 "$img" b
    compare_masked bitmap --add -g 0 "$img" b
    compare_masked bitmap --add -g 3 "$img" b
    compare_masked bitmap --add -g 4G "$img" b
    compare_masked bitmap --add -g 2G "$img" b
    compare_masked bitmap --merge c -b a.qed -F qed "$img" b
done
compare_masked bitmap -f qed --add a.qed b
compare_masked bitmap -f raw --add a.raw b
compare_runs . . snapshot -l
compare_runs . . snapshot
compare_runs . . snapshot -a
compare_runs . . snapshot -l a.qed a.raw
compare_runs . . snapshot -x a.qed
compare_runs . . snapshot -c s1 -c s2 a.qed
compare_runs . . bitmap
compare_runs . . bitmap a.qed b
compare_runs . . bitmap --add a.qed
compare_runs . . bitmap --add a.qed b c
compare_runs . . bitmap --add -g x a.qed b
compare_runs . . bitmap --add -g 8E a.qed b
compare_runs . . bitmap --remove -g 64k a.qed b
compare_runs . . bitmap --add -F raw a.qed b
compare_runs . . bitmap --add -b a.raw a.qed b
compare_runs . . bitmap -q --add a.qed b
compare_runs . . bitmap --merge

cmp a.qed a.qed.orig || mismatch "a.qed changed"
cmp a.raw a.raw.orig || mismatch "a.raw changed"
report_mismatches
