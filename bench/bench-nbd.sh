#!/bin/sh
# fio's nbd engine against `nbdkit qed` and `qemu-nbd -f qed` on the same
# machine, in the same run: 4 KiB random writes (allocating, then in place)
# and random reads at queue depth 16. Prints IOPS and our/QEMU ratios.
# Usage: bench/bench-nbd.sh [BUILD_DIR] [SECONDS]
set -eu
build=$(cd "${1:-build}" && pwd)
runtime=${2:-10}
plugin=$build/plugins/nbdkit/nbdkit-qed-plugin.so
qed_img=$build/tools/qed-img/qed-img
for cmd in fio nbdkit qemu-nbd qemu-img; do
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

# iops SOCKET RW: runs one fio job and prints its IOPS.
iops() {
    fio --name=bench --ioengine=nbd --uri="nbd+unix:///?socket=$1" --rw="$2" --bs=4k \
        --iodepth=16 --size="$size" --time_based --runtime="$runtime" --randrepeat=1 \
        --norandommap --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; t=sys.stdin.read(); j=json.loads(t[t.index("{"):])["jobs"][0]; print(int(j["write"]["iops"] + j["read"]["iops"]))'
}

wait_socket() {
    i=0
    while [ ! -S "$1" ]; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || { echo "bench-nbd: no server on $1" >&2; exit 1; }
        sleep 0.1
    done
}

# run NAME: the three phases against the server started by the caller.
run() {
    alloc=$(iops "$dir/sock" randwrite)
    inplace=$(iops "$dir/sock" randwrite)
    read=$(iops "$dir/sock" randread)
    echo "$alloc $inplace $read"
}

"$qed_img" create -q -f qed "$dir/ours.qed" "$size"
nbdkit -f -U "$dir/sock" "$plugin" "$dir/ours.qed" 2>"$dir/nbdkit.log" &
server=$!
wait_socket "$dir/sock"
ours=$(run)
kill "$server"; wait "$server" 2>/dev/null || true; server=""
rm -f "$dir/sock"

qemu-img create -q -f qed "$dir/qemu.qed" "$size"
qemu-nbd -t -f qed -k "$dir/sock" --cache=writeback --aio=threads -e 16 "$dir/qemu.qed" &
server=$!
wait_socket "$dir/sock"
theirs=$(run)
kill "$server"; wait "$server" 2>/dev/null || true; server=""

python3 - "$ours" "$theirs" "$runtime" <<'PY'
import sys
ours = [int(x) for x in sys.argv[1].split()]
theirs = [int(x) for x in sys.argv[2].split()]
print(f"fio nbd engine, 4 KiB, iodepth 16, {sys.argv[3]} s per phase, 1 GiB image")
print(f"{'phase':28} {'nbdkit qed':>12} {'qemu-nbd qed':>13} {'ratio':>7}")
for name, a, b in zip(["randwrite (allocating)", "randwrite (in place)", "randread"],
                      ours, theirs):
    print(f"{name:28} {a:>12} {b:>13} {a / b if b else float('inf'):>7.2f}")
PY
