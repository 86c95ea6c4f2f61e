#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Times `qed-img check` against `qemu-img check` on the same images in the
# same run: 64 GiB QED images with 16 GiB allocated, with 64 KiB clusters
# (262144 data clusters behind 8 full L2 tables) and with 4 KiB clusters
# and table_size 16 (4 Mi data clusters, 512 tables), laid out as QEMU lays
# them (data first, then its table) and made sparsely by writing the tables
# directly. Prints each tool's best time of RUNS runs (after one warm-up run
# each) and their ratio.
#
#   bench/bench-check.sh [BUILDDIR]     (default: build; RUNS=5, DIR=/tmp)
set -euo pipefail

BUILDDIR=${1:-build}
QED_IMG=${QED_IMG:-$BUILDDIR/tools/qed-img/qed-img}
RUNS=${RUNS:-5}
[ -x "$QED_IMG" ] || { echo "no qed-img at $QED_IMG (build first)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "qemu-img is not installed" >&2; exit 1; }

work=$(mktemp -d "${DIR:-/tmp}/bench-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
img=$work/big.qed

# make_image PATH CLUSTER_SIZE TABLE_SIZE: 64 GiB virtual, a quarter of its
# L2 tables present and full (16 GiB), spread evenly over the disk.
make_image() {
    python3 - "$@" <<'PY'
import struct, sys
path, cs, ts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = cs * ts // 8                     # entries per table
size = 64 << 30
nl1 = size // (n * cs)               # L1 entries that cover the disk
with open(path, 'wb') as f:
    f.write(struct.pack('<IIIIQQQQQII', 0x00444551, cs, ts, 1, 0, 0, 0, cs, size, 0, 0))
    l1 = [0] * n
    pos = (1 + ts) * cs              # after the header and the L1 table
    for i in range(0, nl1, 4):
        first = pos // cs
        pos += n * cs                # the data clusters (holes in the file)
        f.seek(pos)
        f.write(struct.pack('<%dQ' % n, *[(first + j) * cs for j in range(n)]))
        l1[i] = pos
        pos += ts * cs
    f.seek(cs)
    f.write(struct.pack('<%dQ' % n, *l1))
    f.truncate(pos)
PY
}

best() { # best wall time in microseconds of RUNS runs of the command (one warm-up)
    "$@" >/dev/null 2>&1 || true
    local b=
    for _ in $(seq "$RUNS"); do
        local t0 t1
        t0=$(date +%s%N)
        "$@" >/dev/null 2>&1 || true
        t1=$(date +%s%N)
        local t=$(( (t1 - t0) / 1000 ))
        if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
    done
    echo "$b"
}

for geometry in "65536 4" "4096 16"; do
    read -r cs ts <<<"$geometry"
    make_image "$img" "$cs" "$ts"
    echo "== 64 GiB virtual, 16 GiB allocated, $((cs / 1024)) KiB clusters, table_size $ts" \
        "($(( (16 << 30) / cs )) data clusters)"
    # What each says (qemu-img reports false leaks past cluster_size - 1
    # clusters: docs/format.md).
    for tool in "$QED_IMG" qemu-img; do
        status=0
        out=$("$tool" check "$img" 2>&1) || status=$?
        printf '%s (exit %d): %s\n' "${tool##*/}" "$status" \
            "$(echo "$out" | grep -v '^$' | tr '\n' ' ')"
    done
    ours=$(best "$QED_IMG" check "$img")
    qemu=$(best qemu-img check "$img")
    awk -v o="$ours" -v q="$qemu" 'BEGIN {
        printf "qed-img check:  %8.1f ms\n", o / 1000
        printf "qemu-img check: %8.1f ms\n", q / 1000
        printf "ratio qemu-img/qed-img: %.1fx\n", q / o
    }'
    rm -f "$img"
done
