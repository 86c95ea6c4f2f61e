#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# How the block layer should issue its I/O, measured with fio on this
# machine: synchronous pread/pwrite from 16 threads (what libqed's blk layer
# does today, driven by its callers' threads: ioengine=psync, numjobs=16,
# thread) against io_uring from one thread at depth 16 (ioengine=io_uring,
# iodepth=16). Same file (1 GiB, preallocated and written), O_DIRECT, 4 KiB
# random writes then random reads; RUNS runs of each, interleaved, SECONDS
# each; prints the median IOPS of each and the ratio (docs/performance.md
# records a run and the conclusion).
#
#   bench/bench-blk.sh [DIR]      (default: /var/tmp; RUNS=3, BLK_SECONDS=10)
set -euo pipefail
RUNS=${RUNS:-3}
SECONDS_=${BLK_SECONDS:-10}
command -v fio >/dev/null || { echo "bench-blk: fio is not installed" >&2; exit 1; }
work=$(mktemp -d "${1:-/var/tmp}/bench-blk.XXXXXX")
trap 'rm -rf "$work"' EXIT
file=$work/file

# Preallocated and written through, so that neither engine allocates blocks
# or converts unwritten extents during the measurement.
fio --name=fill --filename="$file" --size=1g --rw=write --bs=1m --direct=1 \
    --ioengine=psync --fallocate=native >/dev/null

# iops ENGINE RW: one fio run; prints its IOPS (all jobs together).
iops() {
    local -a opts
    if [ "$1" = psync ]; then
        opts=(--ioengine=psync --numjobs=16 --thread --group_reporting)
    else
        opts=(--ioengine=io_uring --iodepth=16)
    fi
    fio --name=blk --filename="$file" --size=1g --rw="$2" --bs=4k --direct=1 \
        --time_based --runtime="$SECONDS_" --norandommap --randrepeat=0 \
        "${opts[@]}" --output-format=json |
        python3 -c 'import json, sys
j = json.load(sys.stdin)["jobs"][0]
print(int(j["write"]["iops"] + j["read"]["iops"]))'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

echo "fio $(fio --version | sed 's/^fio-//'), 4 KiB, O_DIRECT, 1 GiB preallocated file on" \
    "$(df -T "$work" | awk 'NR == 2 { print $2 " (" $1 ")" }'), $(nproc) CPUs," \
    "$(uname -r), $SECONDS_ s per run, median of $RUNS; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-10s %14s %14s %8s   %s\n' rw "psync x16 thr" "io_uring qd16" ratio runs
for rw in randwrite randread; do
    p=() u=()
    for i in $(seq "$RUNS"); do
        if [ $((i % 2)) -eq 1 ]; then # which goes first alternates
            p+=("$(iops psync "$rw")")
            u+=("$(iops io_uring "$rw")")
        else
            u+=("$(iops io_uring "$rw")")
            p+=("$(iops psync "$rw")")
        fi
    done
    pm=$(printf '%s\n' "${p[@]}" | median)
    um=$(printf '%s\n' "${u[@]}" | median)
    printf '%-10s %14s %14s %7.2fx   psync %s; io_uring %s\n' "$rw" "$pm" "$um" \
        "$(awk -v a="$um" -v b="$pm" 'BEGIN { print a / b }')" "${p[*]}" "${u[*]}"
done
