#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img measure and dd against qemu-img on the same inputs: raw measurements
# and every error as qemu-img's (output, JSON, exit status); QED measurements
# (which qemu-img refuses) match what qed-img convert writes; dd writes the
# same images as qemu-img dd, quirks and messages included.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io cmp

cd "$T"
mkdir q o
# The sources, made the same way in q/ and o/ (a copy could turn zeros into
# holes); odd.raw is random, written once.
head -c 1051576 /dev/urandom >odd.raw
for d in q o; do (
    cd $d
    cp ../odd.raw .
    qemu-img create -q -f raw base.raw 5M
    qemu-io -f raw -c "write -P 0x11 0 1M" -c "write -P 0x22 3M 100k" base.raw >/dev/null
    qemu-img create -q -f qed -b base.raw -F raw top.qed 6M
    qemu-io -f qed -c "write -P 0x33 512k 200k" -c "write -z 3M 64k" -c "write -P 0 4M 128k" \
        -c "write -P 0x44 5M 7k" top.qed >/dev/null
) done

# measure: raw targets and the errors, as qemu-img
for args in "--size 1G" "--size 1000" "-O raw --size 3M" "--output=json --size 1G" \
    "top.qed" "-f raw odd.raw" "--output=json -O raw top.qed" "-U base.raw" \
    "-o preallocation=full --size 1M" \
    "--size 1M top.qed" "" "-f qed" "--size x" "-f qed base.raw" "-l snap top.qed" \
    "-O foo --size 1M" "-o foo=1 --size 1M" "--output=xml --size 1M" "top.qed base.raw"; do
    # shellcheck disable=SC2086
    compare_runs q o measure $args
done

# measure -O qed: what convert writes. qemu-img cannot measure qed.
size_of() { stat -c %s "$1"; }
for geometry in "" "-o cluster_size=4k" "-o cluster_size=1M,table_size=16" "-o table_size=1"; do
    for src in top.qed base.raw odd.raw; do
        # shellcheck disable=SC2086
        "$QED_IMG" measure -O qed $geometry "o/$src" >m.txt
        required=$(sed -n 's/^required size: //p' m.txt)
        full=$(sed -n 's/^fully allocated size: //p' m.txt)
        rm -f o/out.qed o/full.qed
        # shellcheck disable=SC2086
        "$QED_IMG" convert -O qed $geometry "o/$src" o/out.qed
        # shellcheck disable=SC2086
        "$QED_IMG" convert -O qed -S 0 $geometry "o/$src" o/full.qed
        [ "$(size_of o/out.qed)" -le "$required" ] ||
            mismatch "measure -O qed $geometry $src: convert wrote $(size_of o/out.qed)," \
                "more than the required $required"
        [ "$(size_of o/full.qed)" -eq "$full" ] ||
            mismatch "measure -O qed $geometry $src: fully allocated $full," \
                "convert -S 0 wrote $(size_of o/full.qed)"
    done
done
# Data without zeros: convert writes exactly the required size.
"$QED_IMG" measure -O qed --output=json o/odd.raw >m.json
rm -f o/out.qed
"$QED_IMG" convert -O qed o/odd.raw o/out.qed
grep -q "\"required\": $(size_of o/out.qed),\$" m.json ||
    mismatch "measure -O qed odd.raw: $(cat m.json), convert wrote $(size_of o/out.qed)"
# --size: an empty image is what create writes
"$QED_IMG" create -q -f qed o/empty.qed 10G
"$QED_IMG" measure -O qed --size 10G >m.txt
grep -q "^required size: $(size_of o/empty.qed)\$" m.txt ||
    mismatch "measure -O qed --size 10G: $(cat m.txt), create wrote $(size_of o/empty.qed)"

# dd: the same images, messages and exit status as qemu-img dd
dd_case() {
    out=$1
    fmt=$2
    shift 2
    rm -f "q/$out" "o/$out"
    compare_runs q o dd "$@"
    if [ -e "q/$out" ]; then
        qemu-img compare -q -f "$fmt" -F "$fmt" "q/$out" "o/$out" || mismatch "dd $*: differ"
        (cd q && qemu-img map -f "$fmt" --output=json "$out") >q.map
        (cd o && qemu-img map -f "$fmt" --output=json "$out") >o.map
        diff -u q.map o.map >&2 || mismatch "dd $*: allocated differently"
        [ "$(size_of "q/$out")" -eq "$(size_of "o/$out")" ] || mismatch "dd $*: lengths differ"
    elif [ -e "o/$out" ]; then
        mismatch "dd $*: qed-img wrote what qemu-img did not"
    fi
}
dd_case o.raw raw if=top.qed of=o.raw
dd_case o.raw raw bs=64k count=3 skip=1 if=top.qed of=o.raw
dd_case o.raw raw bs=1000 count=3 if=odd.raw of=o.raw
dd_case o.raw raw bs=1000 skip=1048 if=odd.raw of=o.raw
dd_case o.raw raw bs=1k count=1 skip=2 if=odd.raw of=o.raw
dd_case o.raw raw skip=100000 if=base.raw of=o.raw
dd_case o.qed qed -O qed bs=4k count=10 if=top.qed of=o.qed
dd_case o.qed qed -O qed -f raw bs=1M if=base.raw of=o.qed
dd_case o.raw raw bs=0 if=top.qed of=o.raw
dd_case o.raw raw bs=3G if=top.qed of=o.raw
dd_case o.raw raw bs=x if=top.qed of=o.raw
dd_case o.raw raw count=x if=top.qed of=o.raw
dd_case o.raw raw skip=x if=top.qed of=o.raw
dd_case o.raw raw if=top.qed
dd_case o.raw raw foo=1 if=top.qed of=o.raw
dd_case o.raw raw -O foo if=top.qed of=o.raw
dd_case o.raw raw -f qed if=base.raw of=o.raw
dd_case o.raw raw --frobnicate if=top.qed of=o.raw
qemu-img check -q o/o.qed 2>/dev/null || true
"$QED_IMG" dd -O qed bs=4k count=10 if=o/top.qed of=o/o.qed
qemu-img check -q o/o.qed || mismatch "dd -O qed: qemu-img check failed"

report_mismatches
