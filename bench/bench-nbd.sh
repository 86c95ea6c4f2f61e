#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio's nbd engine against `nbdkit qed` and, in the same run on the same
# machine, `qemu-nbd` serving QED, qcow2 and a raw file: 4 KiB random writes
# (allocating, then in place) and random reads at queue depth 16. Prints IOPS
# and the ratio of nbdkit qed to each of QEMU's.
# Usage: bench/bench-nbd.sh [BUILD_DIR] [SECONDS]
set -eu
build=$(cd "${1:-build}" && pwd)
runtime=${2:-10}
plugin=$build/plugins/nbdkit/nbdkit-qed-plugin.so
qed_img=$build/tools/qed-img/qed-img
for cmd in fio nbdkit nbdinfo qemu-nbd qemu-img python3; do
    command -v "$cmd" >/dev/null || { echo "bench-nbd: $cmd is not installed" >&2; exit 1; }
done
dir=$(mktemp -d "${TMPDIR:-/tmp}/qed-bench.XXXXXX")
server=""
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT
size=1G
sock=$dir/sock

# iops RW: one fio job against $sock; prints its IOPS.
iops() {
    fio --name=bench --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --rw="$1" --bs=4k \
        --iodepth=16 --size="$size" --time_based --runtime="$runtime" --randrepeat=1 \
        --norandommap --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index("{"):])["jobs"][0]; print(int(j["write"]["iops"] + j["read"]["iops"]))'
}

# measure NAME: waits for the server started by the caller, runs the three
# phases, stops the server (in this shell, so that it is really gone before
# the next one takes the socket), and adds "NAME:alloc,inplace,read".
results=""
measure() {
    i=0
    while ! nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "bench-nbd: no server on $sock" >&2; exit 1; }
        sleep 0.1
    done
    alloc=$(iops randwrite)
    inplace=$(iops randwrite)
    read=$(iops randread)
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
    rm -f "$sock"
    results="$results $1:$alloc,$inplace,$read"
}

"$qed_img" create -q -f qed "$dir/ours.qed" "$size"
nbdkit -f -U "$sock" "$plugin" "$dir/ours.qed" &
server=$!
measure nbdkit-qed

for fmt in qed qcow2 raw; do
    qemu-img create -q -f "$fmt" "$dir/qemu.$fmt" "$size"
    qemu-nbd -t -f "$fmt" -k "$sock" --cache=writeback --aio=threads -e 16 "$dir/qemu.$fmt" &
    server=$!
    measure "qemu-nbd-$fmt"
done

# shellcheck disable=SC2086
python3 - "$runtime" $results <<'PY'
import sys
runtime, rows = sys.argv[1], [a.split(":") for a in sys.argv[2:]]
rows = [(name, [int(x) for x in vals.split(",")]) for name, vals in rows]
ours = rows[0][1]
phases = ["randwrite (allocating)", "randwrite (in place)", "randread"]
print(f"fio nbd engine, 4 KiB, iodepth 16, {runtime} s per phase, 1 GiB image; IOPS")
print(f"{'server':16}" + "".join(f"{p:>24}" for p in phases))
for name, vals in rows:
    cells = []
    for o, v in zip(ours, vals):
        cells.append(f"{v:>12}" + ("" if name == rows[0][0] else f"  ours x{o / v:5.2f}"))
    print(f"{name:16}" + "".join(f"{c:>24}" for c in cells))
PY
