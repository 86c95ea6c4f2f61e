#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Times address translation in two builds of libqed in the same run on the
# same machine (e.g. before and after a change): block status over every
# cluster (translation alone) and a 4 KiB read of every cluster (translation
# and a pread from the page cache), on a fully allocated image whose every
# data cluster is its own run, so that each call translates one cluster.
# The image: 4 KiB clusters, table_size 1 (512 entries per table), 1 GiB
# virtual: 262144 data clusters (holes in a sparse file) behind 512 L2
# tables. The builds take turns, RUNS times; each prints its best.
#
#   bench/bench-translate.sh BUILDDIR [BUILDDIR...]   (RUNS=5, ROUNDS=5)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 BUILDDIR [BUILDDIR...]" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-translate.XXXXXX")
trap 'rm -rf "$work"' EXIT

python3 - "$work/full.qed" <<'PY'
import struct, sys
path, cs, ts = sys.argv[1], 4096, 1
n = cs * ts // 8                       # 512 entries per table
size = 1 << 30
ntables = size // (n * cs)             # 512 tables
with open(path, 'wb') as f:
    l1 = []
    pos = (1 + ts) * cs                # after the header and the L1 table
    for t in range(ntables):
        data = pos // cs
        pos += n * cs                  # the table's data clusters (holes)
        l1.append(pos)
        # Every other cluster, then the rest: no two neighbours contiguous.
        order = list(range(0, n, 2)) + list(range(1, n, 2))
        f.seek(pos)
        f.write(struct.pack('<%dQ' % n, *[(data + k) * cs for k in order]))
        pos += ts * cs
    f.seek(0)
    f.write(struct.pack('<IIIIQQQQQII', 0x00444551, cs, ts, 1, 0, 0, 0, cs, size, 0, 0))
    f.seek(cs)
    f.write(struct.pack('<%dQ' % len(l1), *l1))
    f.truncate(pos)
PY

builds=("$@")
for i in "${!builds[@]}"; do
    build=$(cd "${builds[$i]}" && pwd)
    # shellcheck disable=SC2046
    cc -O2 -o "$work/bench$i" "$here/bench-translate.c" -I"$here/../include" \
        $(pkg-config --cflags --libs glib-2.0) -L"$build/src" -lqed -Wl,-rpath,"$build/src"
done
declare -a status reads
for run in $(seq "$RUNS"); do
    for i in "${!builds[@]}"; do
        read -r st rd < <("$work/bench$i" "$work/full.qed" "$ROUNDS")
        if [ "$run" -eq 1 ] || awk "BEGIN { exit !($st < ${status[$i]}) }"; then
            status[i]=$st
        fi
        if [ "$run" -eq 1 ] || awk "BEGIN { exit !($rd < ${reads[$i]}) }"; then
            reads[i]=$rd
        fi
    done
done
printf '%-40s %18s %18s\n' build "block status ns" "4k read ns"
for i in "${!builds[@]}"; do
    printf '%-40s %18s %18s\n' "${builds[$i]}" "${status[$i]}" "${reads[$i]}"
done
