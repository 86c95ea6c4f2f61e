#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img convert behaves as qemu-img convert on the same small sources (raw,
# QED, a QED chain over a raw base with zero clusters, sizes that are not a
# multiple of the cluster size): the same output and exit status, results
# that qemu-img compare finds identical, allocated alike (qemu-img map), and
# QED results that pass qemu-img check; the error paths fail as qemu-img's.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io cmp

cd "$T"
mkdir q o # qemu-img works in q/, qed-img in o/, on copies of the same sources

# The sources, made the same way in q/ and o/ (a copy could turn zeros into
# holes); odd.raw is random, written once.
head -c 1051576 /dev/urandom >odd.raw
for d in q o; do (
    cd $d
    cp ../odd.raw .
    qemu-img create -q -f raw base.raw 5M
    qemu-io -f raw -c "write -P 0x11 0 1M" -c "write -P 0 1M 64k" \
        -c "write -P 0x22 3M 100k" base.raw >/dev/null
    qemu-img create -q -f qed -b base.raw -F raw mid.qed 6M
    qemu-io -f qed -c "write -P 0x33 512k 200k" -c "write -z 3M 64k" -c "write -P 0x44 5M 7k" \
        -c "write -P 0 4M 128k" mid.qed >/dev/null
    qemu-img create -q -f qed -b mid.qed -F qed top.qed 7M
    qemu-io -f qed -c "write -P 0x55 2M 4k" -c "write -z 0 64k" -c "write -P 0x66 6M 1k" \
        top.qed >/dev/null
    # 1 MiB and 3000 bytes: a partial last sector, which reads as zeros
    qemu-img convert -f raw -O qed odd.raw odd.qed
    qemu-img create -q -f qed small.qed 1M
) done

# convert_case FMT ARGS...: `convert ARGS` with both tools (the target is
# out.img, the last argument), then the results compared as images of FMT.
convert_case() {
    fmt=$1
    shift
    rm -f q/out.img o/out.img
    compare_runs q o convert "$@"
    [ "$qemu_status" -eq 0 ] || { mismatch "convert $*: qemu-img failed"; return; }
    qemu-img compare -q -f "$fmt" -F "$fmt" q/out.img o/out.img ||
        mismatch "convert $*: the images differ"
    (cd q && qemu-img map -f "$fmt" --output=json out.img) >q.map
    (cd o && qemu-img map -f "$fmt" --output=json out.img) >o.map
    diff -u q.map o.map >&2 || mismatch "convert $*: allocated differently (qemu-img map)"
    if [ "$fmt" = qed ]; then
        (cd o && qemu-img check -q out.img) >&2 || mismatch "convert $*: qemu-img check failed"
    fi
}

for src in top.qed mid.qed base.raw odd.raw odd.qed; do
    convert_case raw "$src" out.img
    convert_case qed -O qed "$src" out.img
done
convert_case raw -O raw -f qed top.qed out.img
convert_case qed -O qed -o cluster_size=4k top.qed out.img
convert_case qed -O qed -o cluster_size=1M,table_size=2 odd.raw out.img
convert_case qed -O qed -S 0 top.qed out.img
convert_case raw -O raw -S 0 top.qed out.img
convert_case qed -O qed -S 64k top.qed out.img
convert_case qed -O qed -S 12k odd.raw out.img
convert_case qed -O qed -m 1 top.qed out.img
convert_case qed -O qed -m 16 -t writeback -T none top.qed out.img
convert_case qed -O qed -B mid.qed -F qed top.qed out.img
convert_case qed -O qed -o backing_file=base.raw,backing_fmt=raw mid.qed out.img
convert_case qed -O qed -B base.raw -F raw -S 0 mid.qed out.img
convert_case raw -q base.raw odd.raw small.qed out.img
convert_case qed -O qed odd.qed base.raw out.img
convert_case raw -C top.qed out.img
convert_case qed -O qed -p top.qed out.img

# -n: into an existing target of the given format (raw by default)
for flags in "" "--target-is-zero"; do
    for d in q o; do
        qemu-img create -q -f qed "$d/out.img" 8M
        qemu-io -f qed -c "write -P 0x77 0 8M" "$d/out.img" >/dev/null
    done
    compare_runs q o convert -n $flags -O qed top.qed out.img
    qemu-img compare -q -f qed -F qed q/out.img o/out.img || mismatch "convert -n $flags: differ"
    (cd o && qemu-img check -q out.img) >&2 || mismatch "convert -n $flags: check failed"
done
# -n -B: the target's backing file shows where the source's top is unallocated
for d in q o; do
    qemu-img create -q -f qed -b mid.qed -F qed "$d/out.img" 7M
done
compare_runs q o convert -n -B mid.qed -O qed top.qed out.img
qemu-img compare -q -f qed -F qed q/out.img o/out.img || mismatch "convert -n -B: differ"
(cd q && qemu-img map --output=json out.img) >q.map
(cd o && qemu-img map --output=json out.img) >o.map
diff -u q.map o.map >&2 || mismatch "convert -n -B: allocated differently"
# ... and --target-is-zero is refused there (qemu-img then exits 0: docs/qed-img.md)
set +e
(cd o && "$QED_IMG" convert -n --target-is-zero -B mid.qed -O qed top.qed out.img) 2>err.txt
status=$?
set -e
[ "$status" -eq 1 ] && grep -q "^qed-img: Cannot use --target-is-zero when" err.txt ||
    mismatch "convert -n --target-is-zero -B: exit $status, $(cat err.txt)"
for d in q o; do
    head -c 8M /dev/zero | tr '\0' 'x' >"$d/out.img"
done
compare_runs q o convert -n top.qed out.img
cmp q/out.img o/out.img >&2 || mismatch "convert -n to raw: the files differ"

# -W writes out of order: the same contents, a layout that may differ.
rm -f o/out.img
"$QED_IMG" convert -W -O qed o/top.qed o/out.img
qemu-img compare -q -f qed o/top.qed o/out.img || mismatch "convert -W: differs from its source"
qemu-img check -q o/out.img || mismatch "convert -W: qemu-img check failed"

# table_size=1: qemu-img writes images that it cannot open (docs/qed-img.md);
# qed-img's result holds the same data.
rm -f o/out.img
"$QED_IMG" convert -O qed -o table_size=1 o/top.qed o/t1.qed || mismatch "table_size=1 failed"
"$QED_IMG" convert -O raw o/t1.qed o/t1.raw
qemu-img convert -O raw q/top.qed q/t1.raw
cmp q/t1.raw o/t1.raw >&2 || mismatch "convert -o table_size=1: the data differ"

# Errors: qemu-img's words and exit status.
for d in q o; do
    qemu-img create -q -f raw "$d/tiny.raw" 64k
done
compare_error() {
    rm -f q/out.img o/out.img
    compare_runs q o convert "$@"
    [ "$qemu_status" -ne 0 ] || mismatch "convert $*: qemu-img succeeded"
    [ ! -e o/out.img ] || [ -e q/out.img ] || mismatch "convert $*: qed-img left a target"
}
compare_error -c -O qed top.qed out.img
compare_error -c top.qed out.img
compare_error -O foo top.qed out.img
compare_error -f foo top.qed out.img
compare_error -m 0 top.qed out.img
compare_error -m 17 top.qed out.img
compare_error -S 100 top.qed out.img
compare_error -S x top.qed out.img
compare_error -r x top.qed out.img
compare_error top.qed
compare_error
compare_error -n -o cluster_size=4k top.qed out.img
compare_error --target-is-zero top.qed out.img
compare_error -t foo top.qed out.img
compare_error -T foo top.qed out.img
compare_error -B base.raw top.qed out.img
compare_error -O qed -B mid.qed top.qed out.img
compare_error -O qed -B mid.qed -F qed top.qed top.qed out.img
compare_error -O qed -o cluster_size=3k top.qed out.img
compare_error -O qed -o foo=1 top.qed out.img
compare_error -C -S 4k top.qed out.img
compare_error -l snap top.qed out.img
compare_error -l snap top.qed top.qed out.img
compare_error --bitmaps top.qed out.img
compare_error -n top.qed tiny.raw
compare_error --frobnicate top.qed out.img
compare_error -O

# A missing source or -n target: exit 1, the file named (qemu-img names it
# twice: "Could not open 'F': Could not open 'F': ...").
for args in "missing.qed out.img" "-n top.qed missing.img"; do
    set +e
    # shellcheck disable=SC2086
    (cd o && "$QED_IMG" convert $args) >/dev/null 2>err.txt
    status=$?
    set -e
    [ "$status" -eq 1 ] || mismatch "convert $args: exit $status, expected 1"
    grep -q "^qed-img: Could not open 'missing\..*': No such file or directory$" err.txt ||
        mismatch "convert $args: $(cat err.txt)"
done

# The target is a source, or a raw file of a source's backing chain: qemu-img
# keeps writers out of its sources (raw ones too), so creating the target
# fails on the lock and leaves the file as it was.
for args in "-f raw -O raw base.raw base.raw" "-O raw top.qed base.raw" \
    "-n -O raw top.qed base.raw" "-O raw odd.raw odd.raw"; do
    target=${args##* }
    cp "o/$target" saved.img
    compare_runs q o convert $args
    [ "$qemu_status" -ne 0 ] || mismatch "convert $args: qemu-img succeeded"
    cmp -s "o/$target" saved.img || mismatch "convert $args: qed-img changed $target"
done

# A full disk (a file size limit of 512 KiB or 1 MiB, as the shell counts
# blocks, under 2 MiB of random data; the target's header and L1 table fit):
# the write fails with EFBIG (the signal is ignored, as in qemu-img), so exit
# 1 with the reason, not death by SIGXFSZ; the QED target left checks clean.
head -c 2M /dev/urandom >o/random.raw
for fmt in qed raw; do
    rm -f o/full.img
    set +e
    (ulimit -f 1024 && cd o && "$QED_IMG" convert -f raw -O $fmt random.raw full.img) 2>err.txt
    status=$?
    set -e
    [ "$status" -eq 1 ] || mismatch "convert -O $fmt past ulimit -f: exit $status, expected 1"
    grep -q "File too large" err.txt || mismatch "convert -O $fmt past ulimit -f: $(cat err.txt)"
    if [ $fmt = qed ]; then
        qemu-img check -q o/full.img || mismatch "convert -O qed past ulimit -f: check failed"
    fi
done

report_mismatches
