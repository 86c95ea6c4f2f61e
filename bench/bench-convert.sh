#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Times `qed-img convert` against `qemu-img convert` on the same sources in
# the same run: a 2 GiB disk, half random data and half holes (random runs
# of 64 KiB to 1 MiB, data and hole alternating), as a raw file and as a QED
# image (made by qemu-img convert). Cases qed->qed, qed->raw, raw->qed, each
# with both tools' default cache modes (target "unsafe": no flush; source
# "writeback") and, with CACHE_NONE=1, also with -t none. Each target is
# removed, and the page cache written back (sync), before its run; which
# tool runs first alternates; each time is the median of
# RUNS runs after one warm-up run each, with the sources in the page cache.
# Prints the medians and the ratio qemu-img/qed-img (above 1: qed-img is
# faster), and checks that both results compare identical.
#
#   bench/bench-convert.sh [BUILDDIR]   (default: build; RUNS=5, DIR=/tmp)
set -euo pipefail

BUILDDIR=${1:-build}
QED_IMG=${QED_IMG:-$BUILDDIR/tools/qed-img/qed-img}
RUNS=${RUNS:-5}
[ -x "$QED_IMG" ] || { echo "no qed-img at $QED_IMG (build first)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }

work=$(mktemp -d "${DIR:-/tmp}/bench-convert.XXXXXX")
trap 'rm -rf "$work"' EXIT

# 2 GiB: runs of 64 KiB to 1 MiB (multiples of 4 KiB), data then hole, with
# a fixed seed so that every run of the benchmark copies the same disk.
python3 - "$work/src.raw" <<'PY'
import os, random, sys
size = 2 << 30
rnd = random.Random(9)
with open(sys.argv[1], 'wb') as f:
    f.truncate(size)
    pos, data = 0, True
    while pos < size:
        n = min(rnd.randrange(16, 257) * 4096, size - pos)
        if data:
            f.seek(pos)
            f.write(os.urandom(n))
        pos += n
        data = not data
PY
qemu-img convert -f raw -O qed "$work/src.raw" "$work/src.qed"
sync
echo "source: 2 GiB virtual, $(du -m "$work/src.raw" | cut -f1) MiB of random data" \
     "in 64k-1M runs between holes; $(nproc) CPUs; $(uname -r)"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# run_case NAME SRC_FMT SRC OUT_FMT [EXTRA OPTIONS...]
run_case() {
    local name=$1 sfmt=$2 src=$3 ofmt=$4
    shift 4
    local tq=$work/out-qemu tl=$work/out-qed
    local -a tq_times=() tl_times=()
    for i in $(seq 0 "$RUNS"); do
        local order="qemu-img $QED_IMG"
        [ $((i % 2)) -eq 0 ] || order="$QED_IMG qemu-img" # who goes first alternates
        for tool in $order; do
            local out=$tq
            [ "$tool" = qemu-img ] || out=$tl
            rm -f "$out"
            sync # the last copy's dirty pages are not written back during this one
            local t0 t1
            t0=$(date +%s%N)
            "$tool" convert -f "$sfmt" -O "$ofmt" "$@" "$src" "$out"
            t1=$(date +%s%N)
            [ "$i" -eq 0 ] && continue # warm-up
            if [ "$tool" = qemu-img ]; then
                tq_times+=($(( (t1 - t0) / 1000 )))
            else
                tl_times+=($(( (t1 - t0) / 1000 )))
            fi
        done
    done
    qemu-img compare -q -f "$ofmt" -F "$ofmt" "$tq" "$tl" ||
        { echo "$name: the results differ" >&2; exit 1; }
    local q o
    q=$(printf '%s\n' "${tq_times[@]}" | median)
    o=$(printf '%s\n' "${tl_times[@]}" | median)
    awk -v n="$name $*" -v o="$o" -v q="$q" 'BEGIN {
        printf "%-28s qemu-img %8.1f ms   qed-img %8.1f ms   ratio %.2fx\n",
               n, q / 1000, o / 1000, q / o
    }'
    rm -f "$tq" "$tl"
}

echo "== default cache modes (target unsafe, source writeback), median of $RUNS"
run_case "qed->qed" qed "$work/src.qed" qed
run_case "qed->raw" qed "$work/src.qed" raw
run_case "raw->qed" raw "$work/src.raw" qed
if [ "${CACHE_NONE:-0}" = 1 ]; then
    echo "== target cache none (O_DIRECT), median of $RUNS"
    run_case "qed->qed" qed "$work/src.qed" qed -t none
    run_case "qed->raw" qed "$work/src.qed" raw -t none
    run_case "raw->qed" raw "$work/src.raw" qed -t none
fi
