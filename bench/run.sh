#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The benchmark table of libqed against QEMU's tools, in one run on one
# machine (docs/performance.md describes each workload and how to read the
# numbers). For each workload it runs qemu-img on a raw, a qcow2 and a QED
# image and qed-img on a QED image ("ours"), interleaved (the order rotates
# each repetition), on fresh images each repetition when the workload
# allocates, and prints the median of REPS repetitions, the ratios ours/raw
# and qemu-qed/ours, the issue's target and whether it is met; then the
# writes and flushes per request of one more, untimed run of each (strace,
# and qed-img bench --stats for ours); the same as JSON, in a file it names.
#
#   bench/run.sh [-B BUILDDIR] [WORKLOAD...]     (default: build-bench, all)
#
# Workloads: W1 W1b W2 W3 W4 W5 W6 W7 W8 M1 R1. Environment:
#   REPS=3        repetitions (the median is reported)
#   QUICK=1       small counts and sizes, for trying the script out
#   OURS_IMG=...  the qed-img that runs the "ours" column (default
#                 BUILDDIR/tools/qed-img/qed-img; OURS_IMG=qemu-img runs
#                 qemu-img there too, to try the script without qed-img bench)
#   BENCH_DIR=... where the images go (default BUILDDIR/bench-data; W7
#                 needs 17 GiB there, W8 up to a few GiB per server)
#   KEEP=1        keep the images made once (W7's, the backing files) for the
#                 next run instead of removing them at the end
#   W8_SECONDS=20 each fio phase of W8
#   R1_DIR=...    where R1's golden image and copies go (default /dev/shm
#                 when it has room, else BENCH_DIR)
set -eEuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=build-bench
if [ "${1:-}" = -B ]; then
    BUILD=$2
    shift 2
fi
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
REPS=${REPS:-3}
QUICK=${QUICK:-0}
OURS_IMG=${OURS_IMG:-$BUILD/tools/qed-img/qed-img}
QED_IO=${QED_IO:-$BUILD/tools/qed-io/qed-io}
PLUGIN=${PLUGIN:-$BUILD/plugins/nbdkit/nbdkit-qed-plugin.so}
BENCH_DIR=${BENCH_DIR:-$BUILD/bench-data}
W8_SECONDS=${W8_SECONDS:-20}
helper="python3 $here/run-helper.py"
all="W1 W1b W2 W3 W4 W5 W6 W7 W8 M1 R1"
workloads=${*:-$all}

die() { echo "bench/run.sh: $*" >&2; exit 1; }
need() {
    for cmd; do
        command -v "$cmd" >/dev/null || die "$cmd is not installed (make deps)"
    done
}

for w in $workloads; do
    case " $all " in *" $w "*) ;; *) die "unknown workload $w (known: $all)" ;; esac
done
need qemu-img qemu-io python3 strace
case " $workloads " in *" W8 "*)
    need fio nbdkit nbdinfo qemu-nbd
    [ -f "$PLUGIN" ] || die "no nbdkit plugin at $PLUGIN (build first)" ;;
esac
case " $workloads " in *" R1 "*)
    need nbdkit nbdinfo nbdcopy qemu-nbd
    [ -f "$PLUGIN" ] || die "no nbdkit plugin at $PLUGIN (build first)" ;;
esac
case " $workloads " in *" M1 "*)
    [ -x /usr/bin/time ] || die "/usr/bin/time is not installed (Debian's time)"
    [ -x "$QED_IO" ] || die "no qed-io at $QED_IO (build first)" ;;
esac
command -v "$OURS_IMG" >/dev/null || die "no qed-img at $OURS_IMG (build first: make bench)"
# W1-W5 need `qed-img bench`; refuse rather than measure something else.
case " $workloads " in *" W1 "* | *" W1b "* | *" W2 "* | *" W3 "* | *" W4 "* | *" W5 "*)
    "$OURS_IMG" bench --help >/dev/null 2>&1 ||
        die "$OURS_IMG has no bench command, so W1-W5 cannot run; build a qed-img with" \
            "'qed-img bench', or set OURS_IMG=qemu-img to try the script with qemu-img" \
            "in every column" ;;
esac
ours_stats=0
if [ "$(basename "$OURS_IMG")" != qemu-img ]; then
    ours_stats=1 # qed-img bench --stats
fi

mkdir -p "$BENCH_DIR"
work=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
cache=$BENCH_DIR/cache
mkdir -p "$cache"
server=""
r1_work=""
r1_servers=""
cleanup() {
    local pid
    for pid in $server $r1_servers; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
    [ -z "$r1_work" ] || rm -rf "$r1_work"
    [ "${KEEP:-0}" = 1 ] || rm -rf "$cache"
    if [ "$reported" = 0 ] && [ -s "${results:-/nonexistent}" ]; then
        echo "bench/run.sh: stopped early; what it measured until then:" >&2
        $helper report "$results" "$json" "${meta:-} (stopped early)" || true
        echo "JSON: $json"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
outdir=$BUILD/bench-results
mkdir -p "$outdir"
stamp=$(date +%Y%m%d-%H%M%S)
json=$outdir/bench-$stamp.json
results=$outdir/bench-$stamp.tsv # kept: a failed run still shows what it measured
: >"$results"
reported=0
trap 'echo "bench/run.sh: line $LINENO: $BASH_COMMAND failed" >&2' ERR

# record KIND WORKLOAD COLUMN REP VALUE...: one line of the results.
record() {
    local kind=$1 w=$2 col=$3 rep=$4 IFS=" "
    shift 4
    printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$w" "$col" "$rep" "$*" >>"$results"
}
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# Counts that QUICK=1 shrinks.
if [ "$QUICK" = 1 ]; then
    n_alloc=2000 n_read=5000 w6_size=$((256 << 20)) w7_size=4G w7_count=16384
    w8_seconds=${W8_SECONDS_QUICK:-3} m1_step=16 r1_size=$((256 << 20))
else
    n_alloc=20000 n_read=50000 w6_size=$((2 << 30)) w7_size=64G w7_count=262144
    w8_seconds=$W8_SECONDS m1_step=1 r1_size=$((2 << 30))
fi

# The tool and format of a column.
tool_of() { if [ "$1" = ours ]; then echo "$OURS_IMG"; else echo qemu-img; fi; }
fmt_of() { case $1 in raw) echo raw ;; qcow2) echo qcow2 ;; *) echo qed ;; esac; }

# rotate REP COLUMNS...: the columns, starting at a different one each rep.
rotate() {
    local rep=$1
    shift
    local -a c=("$@")
    local n=${#c[@]} i
    for ((i = 0; i < n; i++)); do
        printf '%s ' "${c[$(((i + rep) % n))]}"
    done
}

# ---------------------------------------------------------------- images
# The same image for each column that only reads it is made once per run.

# written_raw PATH SIZE: a raw file written all through (64 KiB writes).
written_raw() {
    [ -f "$1" ] && return 0
    qemu-img create -q -f raw "$1.tmp" "$2"
    qemu-img bench -q -w -t none -n -c $(($(numfmt --from=iec "$2") / 65536)) -d 16 \
        -s 64k -S 64k --pattern=165 -f raw "$1.tmp" >/dev/null
    mv "$1.tmp" "$1"
}

# written_img FMT PATH SIZE: an image of FMT with every cluster written by qemu-img.
written_img() {
    [ -f "$2" ] && return 0
    qemu-img create -q -f "$1" "$2.tmp" "$3"
    qemu-img bench -q -w -t none -n -c $(($(numfmt --from=iec "$3") / 65536)) -d 16 \
        -s 64k -S 64k --pattern=165 -f "$1" "$2.tmp" >/dev/null
    mv "$2.tmp" "$2"
}

# ---------------------------------------------------------------- W1-W5
# bench_args W: qemu-img bench's options for workload W (without -f).
bench_args() {
    case $1 in
    W1 | W1b) echo "-w -t none -n -c $n_alloc -d 16 -s 4k -S 64k" ;;
    W2) echo "-w -t none -n -c $n_alloc -d 16 -s 64k -S 64k" ;;
    W3) echo "-w -t writeback -c $n_alloc -d 16 -s 4k -S 64k --flush-interval=16" ;;
    W4 | W5) echo "-t none -n -c $n_read -d 16 -s 4k -S 64k" ;;
    esac
}

# bench_image W COL PATH_VAR: prepares the image COL benchmarks in W (a
# fresh one for the writing workloads) and sets PATH_VAR to it.
bench_image() {
    local w=$1 col=$2 fmt
    fmt=$(fmt_of "$col")
    local path=$work/$w.$col.$fmt
    case $w in
    W1 | W2 | W3)
        rm -f "$path"
        qemu-img create -q -f "$fmt" "$path" 4G
        ;;
    W1b)
        rm -f "$path"
        if [ "$fmt" = raw ]; then # raw has no backing file: the same writes on raw
            qemu-img create -q -f raw "$path" 4G
        else
            written_raw "$cache/back4g.raw" 4G
            qemu-img create -q -f "$fmt" -b "$cache/back4g.raw" -F raw "$path" 4G
        fi
        ;;
    W4)
        # One written image per format; ours reads the very file qemu-img reads.
        path=$cache/full1g.$fmt
        if [ "$fmt" = raw ]; then written_raw "$path" 1G; else written_img "$fmt" "$path" 1G; fi
        ;;
    W5)
        written_raw "$cache/back1g.raw" 1G
        if [ "$fmt" = raw ]; then
            path=$cache/back1g.raw # the backing file itself: the ceiling
        else
            rm -f "$path"
            qemu-img create -q -f "$fmt" -b "$cache/back1g.raw" -F raw "$path" 1G
        fi
        ;;
    esac
    printf -v "$3" '%s' "$path"
}

run_bench_workload() {
    local w=$1 rep col img args out t
    args=$(bench_args "$w")
    log "$w: bench $args, $REPS repetitions"
    for rep in $(seq 1 "$REPS"); do
        for col in $(rotate "$rep" raw qcow2 qemu-qed ours); do
            bench_image "$w" "$col" img
            sync # write back the page cache of the image just made
            # shellcheck disable=SC2086
            out=$("$(tool_of "$col")" bench $args -f "$(fmt_of "$col")" "$img" 2>&1) ||
                die "$w $col: $(tool_of "$col") bench failed: $out"
            t=$(sed -n 's/^Run completed in \([0-9.]*\) seconds\.$/\1/p' <<<"$out")
            [ -n "$t" ] || die "$w $col: no 'Run completed in' in: $out"
            record time "$w" "$col" "$rep" "$t"
            log "  rep $rep $col: $t s"
        done
    done
    # I/O per request: one more run of each, under strace (and --stats).
    local count
    count=$(sed -n 's/.*-c \([0-9]*\).*/\1/p' <<<"$args")
    for col in raw qcow2 qemu-qed ours; do
        bench_image "$w" "$col" img
        sync
        local -a extra=()
        [ "$col" = ours ] && [ "$ours_stats" = 1 ] && extra=(--stats)
        # shellcheck disable=SC2086
        strace -f -o "$work/strace" \
            -e trace=pwrite64,pwritev,pwritev2,io_submit,io_uring_enter,fdatasync,fsync \
            "$(tool_of "$col")" bench $args "${extra[@]}" -f "$(fmt_of "$col")" "$img" \
            >"$work/stats.out" 2>&1 || die "$w $col: bench under strace failed"
        read -r wr fl ur < <($helper strace "$work/strace")
        record wpr "$w" "$col" 0 "$(awk -v a="$wr" -v n="$count" 'BEGIN { printf "%.3f", a / n }')"
        record fpr "$w" "$col" 0 "$(awk -v a="$fl" -v n="$count" 'BEGIN { printf "%.3f", a / n }')"
        [ "$ur" -eq 0 ] || record note "$w" "$col" 0 "$ur io_uring_enter calls (not counted)"
        if [ "${#extra[@]}" -gt 0 ]; then
            read -r wr fl < <($helper stats "$work/stats.out")
            record owpr "$w" "$col" 0 "$wr"
            record ofpr "$w" "$col" 0 "$fl"
        fi
    done
    rm -f "$work/$w".*
}

# ---------------------------------------------------------------- W6
# A raw source, half random data and half holes (runs of 64 KiB to 1 MiB
# alternating, fixed seed), converted with -t none to each format.
w6_source() {
    [ -f "$cache/w6-$w6_size.raw" ] && return 0
    python3 - "$cache/w6-$w6_size.raw.tmp" "$w6_size" <<'PY'
import os, random, sys
size = int(sys.argv[2])
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
    mv "$cache/w6-$w6_size.raw.tmp" "$cache/w6-$w6_size.raw"
}

run_w6() {
    local src=$cache/w6-$w6_size.raw rep col out t0 t1
    w6_source
    cat "$src" >/dev/null # the source is read from the page cache in every run
    log "W6: convert -t none of $((w6_size >> 20)) MiB ($(du -m "$src" | cut -f1) MiB data)," \
        "$REPS repetitions"
    for rep in $(seq 1 "$REPS"); do
        for col in $(rotate "$rep" raw qcow2 qemu-qed ours); do
            out=$work/w6.$col
            rm -f "$out"
            sync
            t0=$(date +%s%N)
            "$(tool_of "$col")" convert -t none -f raw -O "$(fmt_of "$col")" "$src" "$out" ||
                die "W6 $col: convert failed"
            t1=$(date +%s%N)
            record time W6 "$col" "$rep" "$(awk -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
            log "  rep $rep $col: $(((t1 - t0) / 1000000)) ms"
        done
    done
    qemu-img compare -q -f raw -F qed "$src" "$work/w6.ours" ||
        die "W6: qed-img's copy differs from the source"
    for col in raw qcow2 qemu-qed ours; do
        rm -f "$work/w6.$col"
        sync
        strace -f -o "$work/strace" -e trace=pwrite64,pwritev,pwritev2,io_submit,io_uring_enter,fdatasync,fsync \
            "$(tool_of "$col")" convert -t none -f raw -O "$(fmt_of "$col")" "$src" "$work/w6.$col" ||
            die "W6 $col: convert under strace failed"
        read -r wr fl ur < <($helper strace "$work/strace")
        record wpr W6 "$col" 0 "$wr"
        record fpr W6 "$col" 0 "$fl"
        [ "$ur" -eq 0 ] || record note W6 "$col" 0 "$ur io_uring_enter calls (not counted)"
        rm -f "$work/w6.$col"
    done
}

# ---------------------------------------------------------------- W7
# check of a 64 GiB QED image with 16 GiB allocated: 4 KiB written every
# 256 KiB, so one 64 KiB cluster in four, 262144 clusters (QEMU fills the
# rest of each with zeros), written by qemu-img itself with cache=unsafe,
# the quickest way QEMU has to write it; the sync puts it on the disk. Made
# once and kept for every repetition (and, with KEEP=1, for the next run).
run_w7() {
    local img=$cache/w7-$w7_size.qed rep col t0 t1 status
    if [ ! -f "$img" ]; then
        log "W7: writing the $w7_size image ($w7_count allocating 4 KiB writes, qemu-img bench)"
        t0=$(date +%s%N)
        qemu-img create -q -f qed "$img.tmp" "$w7_size"
        qemu-img bench -q -w -t unsafe -c "$w7_count" -d 16 -s 4k -S 256k -f qed "$img.tmp" \
            >/dev/null
        sync
        mv "$img.tmp" "$img"
        t1=$(date +%s%N)
        record note W7 qemu-qed 0 "image written by qemu-img bench -t unsafe and synced in" \
            "$(((t1 - t0) / 1000000)) ms ($(du -h "$img" | cut -f1) on disk)"
    fi
    log "W7: check, $REPS repetitions (warm page cache)"
    # The warm-up; exit 3 is leaks only: qemu-img counts false leaks past
    # cluster_size - 1 clusters (docs/format.md), here it finds them.
    for col in qemu-qed ours; do
        status=0
        "$(tool_of "$col")" check -f qed "$img" >"$work/check.out" 2>&1 || status=$?
        [ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
            die "W7 $col: check exits $status: $(cat "$work/check.out")"
        [ "$status" -eq 0 ] || record note W7 "$col" 0 "$(tool_of "$col") check exits 3:" \
            "$(grep -m1 -i leak "$work/check.out")"
    done
    for rep in $(seq 1 "$REPS"); do
        for col in $(rotate "$rep" qemu-qed ours); do
            t0=$(date +%s%N)
            status=0
            "$(tool_of "$col")" check -f qed "$img" >/dev/null || status=$?
            t1=$(date +%s%N)
            [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || die "W7 $col: check exited $status"
            record time W7 "$col" "$rep" "$(awk -v a="$t0" -v b="$t1" \
                'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
        done
    done
}

# ---------------------------------------------------------------- W8
sock=""
# wait_server URI PID WORKLOAD: waits until the server PID answers on URI.
wait_server() {
    local i=0
    while ! nbdinfo --size "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ "$i" -lt 100 ] || die "$3: no server at $1"
        kill -0 "$2" 2>/dev/null || die "$3: the server for $1 exited at start"
        sleep 0.1
    done
}

# fio_phase RW OUT: one fio job on $sock; writes its JSON to OUT.
fio_phase() {
    fio --name=w8 --ioengine=nbd --uri="nbd+unix:///?socket=$sock" --rw="$1" --bs=4k \
        --iodepth=16 --size=256g --time_based --runtime="$w8_seconds" --randrepeat=1 \
        --norandommap --output-format=json --status-interval=1 --output="$2" \
        >/dev/null 2>&1 || true
}

# fio_iops RW JSON: the IOPS of RW in fio's output, counted as the I/Os
# done over the time the job ran; fio prints its state every second
# (--status-interval), so a run cut short by a dead server, after which fio
# prints no final report, counts until the last state. Prints "IOPS IOS".
fio_iops() {
    python3 - "$1" "$2" <<'PY'
import json, os, sys
rw, path = sys.argv[1], sys.argv[2]
text = open(path, errors="replace").read() if os.path.exists(path) else ""
dec, pos, last = json.JSONDecoder(), 0, None
while True:
    start = text.find("{", pos)
    if start < 0:
        break
    try:
        obj, pos = dec.raw_decode(text, start)
        if "jobs" in obj:
            last = obj
    except ValueError:
        break
try:
    j = last["jobs"][0]
    ios, ms = j["write" if rw == "randwrite" else "read"]["total_ios"], j["job_runtime"]
    print(f"{ios * 1000 / ms:.0f} {ios}" if ms else "0 0")
except (TypeError, KeyError, IndexError):
    print("0 0")
PY
}

run_w8() {
    local rep col img status wi wn ri alloc
    sock=$work/nbd.sock
    log "W8: fio nbd, ${w8_seconds} s randwrite then ${w8_seconds} s randread per server," \
        "fresh 256 GiB image each, $REPS repetitions"
    for rep in $(seq 1 "$REPS"); do
        for col in $(rotate "$rep" ours qemu-qed raw); do
            img=$work/w8.$col
            rm -f "$img" "$sock"
            qemu-img create -q -f "$(fmt_of "$col")" "$img" 256G
            sync
            case $col in
            ours) nbdkit -f -U "$sock" "$PLUGIN" "$img" cache=none >"$work/server.log" 2>&1 & ;;
            qemu-qed) qemu-nbd -t -f qed --cache=none -k "$sock" "$img" >"$work/server.log" 2>&1 & ;;
            raw) qemu-nbd -t -f raw --cache=none -k "$sock" "$img" >"$work/server.log" 2>&1 & ;;
            esac
            server=$!
            wait_server "nbd+unix:///?socket=$sock" "$server" W8
            fio_phase randwrite "$work/fio-w.json"
            read -r wi wn < <(fio_iops randwrite "$work/fio-w.json")
            if kill -0 "$server" 2>/dev/null; then
                fio_phase randread "$work/fio-r.json"
                read -r ri _ < <(fio_iops randread "$work/fio-r.json")
            else
                ri=0
            fi
            status=0
            if kill -0 "$server" 2>/dev/null; then
                kill "$server"
                wait "$server" 2>/dev/null || true
            else
                wait "$server" 2>/dev/null || status=$?
                record note W8 "$col" 0 "the server died (exit $status) during the run:" \
                    "IOPS are until then ($(grep -m1 -i 'assert\|abort' "$work/server.log" ||
                        tail -n1 "$work/server.log"))"
            fi
            server=""
            # The fraction of the writes that allocated: allocated clusters
            # (QED, check) or file blocks (raw) after the run, over the writes.
            if [ "$col" = raw ]; then
                alloc=$(($(stat -c '%b * %B' "$img") / 4096))
            else
                # (after an abort check may find leaks and exit nonzero)
                qemu-img check --output=json -f qed "$img" >"$work/check.json" 2>/dev/null || true
                alloc=$(python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1])).get("allocated-clusters", 0))
except ValueError:
    print(0)' "$work/check.json")
            fi
            record iops_w W8 "$col" "$rep" "$wi"
            record iops_r W8 "$col" "$rep" "$ri"
            [ "$wn" -gt 0 ] && record alloc W8 "$col" "$rep" \
                "$(awk -v a="$alloc" -v n="$wn" 'BEGIN { printf "%.3f", a / n }')"
            log "  rep $rep $col: write $wi IOPS ($wn), read $ri IOPS, $alloc allocated"
            rm -f "$img"
        done
    done
}

# ---------------------------------------------------------------- M1
# a) 64 TiB image (64 KiB clusters, table_size 4: 32768 L2 tables of 2 GiB
#    each, the most the geometry holds), one allocated cluster in every L2
#    table; written sparsely (the tables' zero entries are holes) by
#    Python, the format's bytes as QEMU writes them. Read: one 4 KiB read in
#    each table's allocated cluster, the tables in random order.
# b) a 1 TiB QED image with 64 MiB clusters and table_size 16 (its L1 table
#    alone is 1 GiB), empty; one 512-byte read.
m1_images() {
    [ -f "$cache/m1a.qed" ] || python3 - "$cache/m1a.qed.tmp" <<'PY'
import struct, sys
path, cs, ts = sys.argv[1], 65536, 4
n = cs * ts // 8                       # 32768 entries per table
size = 64 << 40
with open(path, 'wb') as f:
    l1 = []
    pos = (1 + ts) * cs                # after the header and the L1 table
    for t in range(size // (n * cs)):
        data, table = pos, pos + cs
        f.seek(data)
        f.write(struct.pack('<Q', t) * 512)    # 4 KiB of data in the cluster
        f.seek(table + 8 * (t % n))            # one entry, a different one each table
        f.write(struct.pack('<Q', data))
        l1.append(table)
        pos = table + ts * cs
    f.seek(0)
    f.write(struct.pack('<IIIIQQQQQII', 0x00444551, cs, ts, 1, 0, 0, 0, cs, size, 0, 0))
    f.seek(cs)
    f.write(struct.pack('<%dQ' % len(l1), *l1))
    f.truncate(pos)
PY
    [ -f "$cache/m1a.qed" ] || mv "$cache/m1a.qed.tmp" "$cache/m1a.qed"
    # b) by Python too, sparse: qemu-img cannot create (nor open) it, its
    # size limit overflows with this geometry; qed-img create writes the same
    # bytes (and the zeros of the L1 table).
    [ -f "$cache/m1b.qed" ] || python3 - "$cache/m1b.qed" <<'PY'
import struct, sys
cs, ts = 64 << 20, 16
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<IIIIQQQQQII', 0x00444551, cs, ts, 1, 0, 0, 0, cs, 1 << 40, 0, 0))
    f.truncate((1 + ts) * cs)          # the header cluster and a zero L1 table
PY
    # The reads of a), in a fixed random order: table t's cluster is entry
    # t mod 32768 of table t.
    python3 - "$work/m1a.cmds" "$m1_step" <<'PY'
import random, sys
step = int(sys.argv[2])
tables = list(range(0, 32768, step))
random.Random(10).shuffle(tables)
with open(sys.argv[1], 'w') as f:
    for t in tables:
        off = t * (2 << 30) + (t % 32768) * 65536 + random.Random(t).randrange(16) * 4096
        f.write(f"read -q {off} 4k\n")
PY
    echo "read -q 0 512" >"$work/m1b.cmds"
}

run_m1() {
    local rep col case_ kib t0 t1
    log "M1: building the images"
    m1_images
    # Exit 3 is leaks only: qemu-img counts false leaks past cluster_size - 1
    # clusters (docs/format.md).
    local tool status
    for tool in "$OURS_IMG" qemu-img; do
        status=0
        "$tool" check -f qed "$cache/m1a.qed" >/dev/null || status=$?
        [ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
            die "M1: $tool check of the 64 TiB image exits $status"
    done
    log "M1: peak RSS, $REPS repetitions"
    for case_ in M1a M1b; do
        local img=$cache/m1a.qed cmds=$work/m1a.cmds
        [ "$case_" = M1b ] && img=$cache/m1b.qed cmds=$work/m1b.cmds
        record budget "$case_" ours 0 $((32 * 1024)) # QedOpenOptions default, KiB
        for rep in $(seq 1 "$REPS"); do
            for col in $(rotate "$rep" ours qemu-qed); do
                tool=$QED_IO
                [ "$col" = ours ] || tool=qemu-io
                t0=$(date +%s%N)
                if ! /usr/bin/time -o "$work/rss" -f %M "$tool" -r -t none -f qed "$img" \
                    <"$cmds" >"$work/m1.out" 2>&1; then
                    [ "$col" = ours ] && die "M1: $tool failed: $(tail -n3 "$work/m1.out")"
                    [ "$rep" -gt 1 ] || record note "$case_" "$col" 0 "qemu-io fails:" \
                        "$(grep -m1 -v '^qemu-io>' "$work/m1.out" | sed 's/qemu-io> //g')"
                    continue
                fi
                t1=$(date +%s%N)
                kib=$(tail -n1 "$work/rss")
                record rss "$case_" "$col" "$rep" "$kib"
                record time "$case_" "$col" "$rep" "$(awk -v a="$t0" -v b="$t1" \
                    'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
                log "  $case_ rep $rep $col: $((kib / 1024)) MiB, $(((t1 - t0) / 1000000)) ms"
            done
        done
    done
    record note M1a ours 0 "$(wc -l <"$work/m1a.cmds") reads of 4 KiB, one in each of" \
        "$(wc -l <"$work/m1a.cmds") L2 tables in random order, qed-io/qemu-io -r -t none, commands on stdin"
}

# ---------------------------------------------------------------- R1
# Sequential read of a golden raw image (random, incompressible data) that
# `nbdkit file` serves, through a fresh, empty local QED overlay whose
# backing file is that server's NBD URI: R1u over a Unix socket, R1t over
# TCP on 127.0.0.1. Every byte comes from the server. Columns:
#   ours      qed-img convert -f qed -O raw overlay.qed OUT
#   qemu      qemu-img convert -f qed -O raw overlay.qed OUT
#   ours-nbd  nbdcopy URI null: from `nbdkit qed overlay.qed backing-remote=true
#             readonly=true` (the plugin's read path, no output file)
#   qemu-nbd  nbdcopy URI null: from `qemu-nbd -r -t -e 8 -f qed overlay.qed`
#   nbdcopy   nbdcopy URI null: from the golden server itself (the ceiling)
#   nbdcopy-out  nbdcopy URI OUT from the golden server: the ceiling of the
#             converts, which write the same OUT
# OUT is a new file (removed before each run) in /dev/shm when it has room
# (else in BENCH_DIR), so that the disk underneath does not time the
# writes; both converts run with their default cache modes (source
# writeback, target unsafe: no flush). The golden image is in BENCH_DIR, on
# a disk file system as a server's would be, and read into the page cache
# before the runs; not on tmpfs, where each SEEK_DATA/SEEK_HOLE (nbdkit
# file's block status, which QEMU's NBD client and nbdcopy ask for every
# request) scans the file's pages: 8.6 ms a call at 1 GiB against 19 us on
# ext4, which made qemu-nbd's column 4x slower for reasons of tmpfs.
r1_dir="" r1_out=""
r1_uri_R1u="" r1_uri_R1t=""


# r1_multi_conn URI: "yes" when the server at URI advertises multi-conn.
r1_multi_conn() { if nbdinfo --can multi-conn "$1"; then echo yes; else echo no; fi; }

# r1_run W COL REP: one timed run of column COL of R1u or R1t.
r1_run() {
    local w=$1 col=$2 rep=$3 ov=$r1_dir/$1.qed out=$r1_out/out.raw osock=$r1_dir/ov.sock
    local uri pid="" t0 t1
    eval "uri=\$r1_uri_$w"
    rm -f "$out" "$osock"
    case $col in
    ours-nbd)
        nbdkit -f --exit-with-parent -U "$osock" "$PLUGIN" "$ov" backing-remote=true \
            readonly=true >"$r1_dir/ov.log" 2>&1 &
        pid=$! ;;
    qemu-nbd)
        qemu-nbd -r -t -e 8 -f qed -k "$osock" "$ov" >"$r1_dir/ov.log" 2>&1 &
        pid=$! ;;
    esac
    if [ -n "$pid" ]; then
        server=$pid
        uri="nbd+unix:///?socket=$osock"
        wait_server "$uri" "$pid" R1
        [ "$rep" -gt 1 ] || record note "$w" "$col" 0 "multi-conn: $(r1_multi_conn "$uri")"
    fi
    sync
    t0=$(date +%s%N)
    case $col in
    ours | qemu)
        "$(tool_of "$col")" convert -f qed -O raw "$ov" "$out" || die "R1 $w $col: convert failed" ;;
    nbdcopy-out)
        nbdcopy "$uri" "$out" || die "R1 $w $col: nbdcopy $uri $out failed" ;;
    *)
        nbdcopy "$uri" null: || die "R1 $w $col: nbdcopy $uri failed" ;;
    esac
    t1=$(date +%s%N)
    record time "$w" "$col" "$rep" "$(awk -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%.3f", (b - a) / 1e9 }')"
    log "  $w rep $rep $col: $(((t1 - t0) / 1000000)) ms"
    # The first repetition checks what was read: the golden image, byte for byte.
    if [ "$rep" = 1 ]; then
        case $col in
        ours | qemu | nbdcopy-out) cmp -s "$out" "$r1_dir/golden.raw" ;;
        *) nbdcopy "$uri" "$out" && cmp -s "$out" "$r1_dir/golden.raw" ;;
        esac || die "R1 $w $col: what was read differs from the golden image"
    fi
    rm -f "$out"
    if [ -n "$pid" ]; then
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        server=""
    fi
}

run_r1() {
    local dir=${R1_DIR:-} rep w col port pid uri
    if [ -z "$dir" ]; then
        dir=$BENCH_DIR
        # Room for one copy and 256 MiB to spare.
        if [ -w /dev/shm ] && [ "$(df -k --output=avail /dev/shm | tail -n1)" -gt \
            $((r1_size / 1024 + 262144)) ]; then
            dir=/dev/shm
        fi
    fi
    r1_work=$(mktemp -d "$dir/bench-r1.XXXXXX")
    r1_out=$r1_work
    r1_dir=$work/r1
    mkdir -p "$r1_dir"
    log "R1: a $((r1_size >> 20)) MiB golden image of random data in $BENCH_DIR, the copies in $dir"
    head -c "$r1_size" /dev/urandom >"$r1_dir/golden.raw"
    sync
    cat "$r1_dir/golden.raw" >/dev/null # in the page cache for every run
    nbdkit -f --exit-with-parent -U "$r1_dir/golden.sock" file "$r1_dir/golden.raw" \
        >"$r1_dir/golden-unix.log" 2>&1 &
    pid=$!
    r1_servers="$r1_servers $pid"
    r1_uri_R1u="nbd+unix:///?socket=$r1_dir/golden.sock"
    wait_server "$r1_uri_R1u" "$pid" R1
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
    nbdkit -f --exit-with-parent -i 127.0.0.1 -p "$port" file "$r1_dir/golden.raw" \
        >"$r1_dir/golden-tcp.log" 2>&1 &
    pid=$!
    r1_servers="$r1_servers $pid"
    r1_uri_R1t="nbd://127.0.0.1:$port"
    wait_server "$r1_uri_R1t" "$pid" R1
    for w in R1u R1t; do
        eval "uri=\$r1_uri_$w"
        # qemu-img writes the overlay, so that both tools read the same bytes.
        qemu-img create -q -f qed -b "$uri" -F raw "$r1_dir/$w.qed" "$r1_size"
        record size "$w" golden 0 "$r1_size"
        record note "$w" nbdcopy 0 "golden: nbdkit file on $(df -T "$r1_dir" |
            awk 'NR == 2 { print $2 }') (page cache warm)," \
            "multi-conn: $(r1_multi_conn "$uri"); OUT on $(df -T "$r1_out" | awk 'NR == 2 { print $2 }')"
    done
    log "R1: sequential read through the overlays, $REPS repetitions"
    for rep in $(seq 1 "$REPS"); do
        for w in R1u R1t; do
            for col in $(rotate "$rep" ours qemu ours-nbd qemu-nbd nbdcopy nbdcopy-out); do
                r1_run "$w" "$col" "$rep"
            done
        done
    done
    for pid in $r1_servers; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    r1_servers=""
    rm -rf "$r1_work" "$r1_dir"
    r1_work=""
}

# ---------------------------------------------------------------- main
meta="$(date -u +%Y-%m-%dT%H:%MZ) $(nproc) CPUs ($(sed -n 's/^model name\s*: //p' \
    /proc/cpuinfo | head -n1)), $(uname -r), $(df -T "$BENCH_DIR" | awk 'NR == 2 { print $2 }')\
 on $(df "$BENCH_DIR" | awk 'NR == 2 { print $1 }'), load $(cut -d' ' -f1-3 /proc/loadavg);\
 $(qemu-img --version | head -n1); ours: $OURS_IMG; REPS=$REPS QUICK=$QUICK"
log "$meta"
for w in $workloads; do
    case $w in
    W1 | W1b | W2 | W3 | W4 | W5) run_bench_workload "$w" ;;
    W6) run_w6 ;;
    W7) run_w7 ;;
    W8) run_w8 ;;
    M1) run_m1 ;;
    R1) run_r1 ;;
    esac
done
echo
reported=1
$helper report "$results" "$json" "$meta"
echo
echo "JSON: $json"
