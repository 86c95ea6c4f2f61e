#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img bench against qemu-img bench: the same lines on stdout (the time
# apart), the same errors and exit status for each option and bad argument;
# the same data and the same allocation after -w (qemu-img compare, and
# qemu-img map --output=json of two images benched alike), offsets that
# wrap at the end of the disk, a clean qemu-img check after every write
# bench (deep queues, flushes drained or not, cache modes, an overlay, a
# failed request); --stats counts the run's I/O, and the drained flushes.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"
mkdir q o

# bench_runs IMAGE SETUP ARGS...: a fresh copy of IMAGE in q/ and o/, then
# `qemu-img bench ARGS img` in q/ and `qed-img bench ARGS img` in o/;
# stdout, stderr (program name replaced) and status must agree, with the
# seconds of "Run completed" masked.
bench_runs() {
    src=$1
    shift
    cases=$((cases + 1))
    cp "$src" q/img
    cp "$src" o/img
    set +e
    (cd q && qemu-img bench "$@" img) >q.out 2>q.err
    qs=$?
    (cd o && "$QED_IMG" bench "$@" img) >o.out 2>o.err
    os=$?
    set -e
    mask='s/^Run completed in [0-9]+\.[0-9]{3} seconds\.$/Run completed in S seconds./'
    sed -E "$mask" q.out >q.norm
    sed -E "$mask" o.out >o.norm
    sed 's/qemu-img/qed-img/g' q.err | awk 1 >q.err.norm
    diff -u q.norm o.norm >&2 || mismatch "bench $*: stdout differs (qemu-img: -, qed-img: +)"
    diff -u q.err.norm o.err >&2 || mismatch "bench $*: stderr differs (qemu-img: -, qed-img: +)"
    [ "$qs" -eq "$os" ] || mismatch "bench $*: qemu-img exited $qs, qed-img $os"
}

# The images: an empty QED image, one with data, a raw file.
qemu-img create -f qed empty.qed 2M >/dev/null
qemu-img create -f qed -o cluster_size=4k data.qed 1M >/dev/null
qemu-io -c 'write -P 7 0 1M' data.qed >/dev/null
qemu-img create -f raw disk.raw 1M >/dev/null

# The output lines, and the options that only change how the run goes.
for img in empty.qed data.qed disk.raw; do
    bench_runs $img -c 10 -d 2
    bench_runs $img -w -c 40 -d 8 -S 100k -o 12k --pattern=0x5a
    bench_runs $img -w -c 20 -d 4 --flush-interval=4
    bench_runs $img -f "$(case $img in *.raw) echo raw ;; *) echo qed ;; esac)" -c 4
done
bench_runs empty.qed -c 0
bench_runs data.qed -c 3 -q
bench_runs data.qed -c 5 -d 0x3 -s 1k -S 3k -o 512
bench_runs empty.qed -c 20 -d 4 -s 0
bench_runs data.qed -c 20 -d 4 -S 0 -s 8k
bench_runs data.qed -c 8 -d 1 -U
bench_runs disk.raw -c 8 -d 8 -t none -n
bench_runs data.qed -c 8 -d 8 -t directsync -i native
bench_runs empty.qed -c 8 -d 8 -i io_uring -i threads
bench_runs empty.qed -w -c 40 -d 8 -S 64k
bench_runs empty.qed -w -c 20 -d 4 --flush-interval=010 --no-drain
bench_runs data.qed -w -c 20 -d 4 -t unsafe
bench_runs disk.raw -w -c 8 -d 4 -t writethrough
bench_runs empty.qed -w -c 20 -d 4 -t off -n

# Bad arguments: qemu-img's words and status, the image unchanged.
for args in "-c x" "-c -1" "-c 2147483648" "-c ''" "-d -5" "-d 1x" "--pattern=256" \
    "--pattern=-1" "--flush-interval=x" "-c 4 --flush-interval=64" \
    "-w -c 4 -d 8 --flush-interval=4" "-w -c 4 --flush-interval=64 -d 65" "-t bogus" \
    "-i posix" "-c 4 -n" "-c 4 -i native -t writethrough" "-s 2G" "-s 1x" "-S -1" "-S 4G" \
    "-o 1x" "-o -512" "-o 9223372036854775808" "-c 4 -o 2M" "-c 4 -o 2093056 -s 8k" \
    "-w -c 4 -U" "-c" "-z" "--nope" "--object foo" "-f raw -w -c 1 -o 1M"; do
    eval "bench_runs empty.qed $args"
done
cp empty.qed before.qed
bench_runs empty.qed -w -c 4 -d 1 -o 2M
cmp -s o/img before.qed || fail "a failed bench changed the image"

# Command lines without one image, and a missing image.
compare_runs . . bench -c 1
compare_runs . . bench -c 1 a b
# A missing file: the same status (qed-img says "Could not open" once, as
# its other commands do).
for args in "-c 1" "-f qed -n -c 1" "-w -c 1"; do
    # shellcheck disable=SC2086
    assert_status 1 "$QED_IMG" bench $args missing.qed 2>err
    grep -qx "qed-img: Could not open 'missing.qed': No such file or directory" err ||
        fail "bench $args missing.qed: $(cat err)"
done
[ ! -e missing.qed ] || fail "bench created the file it could not open"

# Offsets wrap at the end of the disk: 40 writes of 4 KiB, 100 KiB apart,
# from 12 KiB, go twice round a 2 MiB disk; the data and the allocation
# (one request at a time, so that the clusters are allocated in the same
# order) are qemu-img bench's, and every written byte is the pattern.
for extra in "" "-t none -n" "--flush-interval=1"; do
    # shellcheck disable=SC2086
    bench_runs empty.qed -w -d 1 -c 40 -s 4k -S 100k -o 12k --pattern=0x5a $extra
    qemu-img map --output=json q/img >q.map
    qemu-img map --output=json o/img >o.map
    diff -u q.map o.map >&2 || mismatch "bench -w -d 1 $extra: the maps differ"
    qemu-img check -q o/img || mismatch "bench -w -d 1 $extra: qemu-img check failed"
    qemu-img compare -q q/img o/img || mismatch "bench -w -d 1 $extra: the data differs"
done
# The same writes by qemu-io into a raw file.
qemu-img create -f raw want.raw 2M >/dev/null
off=12288
i=0
while [ $i -lt 40 ]; do
    echo "write -P 0x5a $off 4k"
    off=$(((off + 102400) % 2097152))
    i=$((i + 1))
done >writes
qemu-io -f raw want.raw <writes >/dev/null
compare_runs . . compare -f raw -F qed want.raw o/img
[ "$qemu_status" -eq 0 ] || fail "qemu-io's writes and qemu-img bench's differ"

# Deep queues over many L2 tables, on a fresh image and on an overlay over
# a raw backing file (copy-on-write of the partial clusters): the image
# checks clean and reads as qemu-img bench's copy.
qemu-img create -f qed -o cluster_size=4k,table_size=2 deep.qed 16M >/dev/null
qemu-img create -f raw base.raw 1M >/dev/null
printf 'write -P 3 0 1M\n' | qemu-io -f raw base.raw >/dev/null
qemu-img create -f qed -u -b ../base.raw -F raw over.qed 1M >/dev/null
for img in deep.qed over.qed; do
    for extra in "-d 16" "-d 16 -t none -n" "-d 4 --flush-interval=4" \
        "-d 4 --flush-interval=8 --no-drain" "-d 7 -t directsync -c 40"; do
        # shellcheck disable=SC2086
        bench_runs $img -w -c 150 -s 1536 -S 107k -o 1k --pattern=9 $extra
        qemu-img check -q o/img || mismatch "$img bench -w $extra: qemu-img check failed"
        qemu-img compare -q q/img o/img || mismatch "$img bench -w $extra: the data differs"
    done
done
# A write that fails halfway through the run leaves a consistent image.
bench_runs deep.qed -w -c 100 -d 8 -S 128k -o 8k -s 128k
qemu-img check -q o/img || mismatch "a failed bench left an inconsistent image"

# The queue depth has to be at least 1 (qemu-img waits forever at -d 0).
assert_status 1 timeout 10 "$QED_IMG" bench -d 0 -c 3 empty.qed 2>err
grep -qx 'qed-img: Invalid queue depth specified' err || fail "-d 0: $(cat err)"
assert_status 0 timeout 10 "$QED_IMG" bench -d 0 -c 0 empty.qed >/dev/null
# An empty disk (where qemu-img divides by zero): no request fits.
qemu-img create -f qed zero.qed 0 >/dev/null
assert_status 1 timeout 10 "$QED_IMG" bench -c 3 zero.qed >out 2>err
grep -qx 'qed-img: Failed request: Input/output error' err || fail "empty disk: $(cat err)"
assert_status 0 timeout 10 "$QED_IMG" bench -s 0 -c 3 zero.qed >/dev/null

# --stats: the I/O of the timed run only. Rewriting allocated clusters
# with O_DIRECT is one write per request and nothing else; a flush every 4
# requests, drained, is 2 flushes in the time of 10 requests (the third,
# after the last request, is not timed, as in qemu-img).
# (The first request reads the L2 table into the cache.)
"$QED_IMG" bench -w -t none -c 10 -d 2 -s 4k --stats data.qed >out
cat >want <<'END'
reads: 1
writes: 10
flushes: 0
bytes_read: 16384
bytes_written: 40960
writes_per_request: 1.000
flushes_per_request: 0.000
END
tail -n 7 out | diff -u want - || fail "--stats of rewrites"
# The flush points are qemu-img's arithmetic on the requests not yet
# submitted; whatever the threads' timing (repeated: a race once skipped one).
for i in $(seq 30); do
    "$QED_IMG" bench -w -c 10 -d 2 --flush-interval=4 --stats data.qed >out
    grep -qx 'flushes: 2' out || fail "--flush-interval=4 of 10, run $i: $(cat out)"
    grep -qx 'flushes_per_request: 0.200' out || fail "--flush-interval=4 of 10: $(cat out)"
    # 37 by 3: the first completion sees 34 left, so flushes at 30, 25 ... 5.
    "$QED_IMG" bench -w -c 37 -d 3 --flush-interval=5 --stats data.qed >out
    grep -qx 'flushes: 6' out || fail "--flush-interval=5 of 37, run $i: $(cat out)"
done
"$QED_IMG" bench -c 8 -d 1 -s 4k --stats data.qed >out
grep -qx 'bytes_read: 49152' out || fail "--stats of reads: $(cat out)"
grep -qx 'writes: 0' out || fail "--stats of reads: $(cat out)"
# Allocating writes count their metadata too.
cp empty.qed alloc.qed
"$QED_IMG" bench -w -c 16 -d 4 -S 64k --stats alloc.qed >out
w=$(sed -n 's/^writes: //p' out)
[ "$w" -gt 16 ] || fail "allocating writes: $(cat out)"
qemu-img check -q alloc.qed || fail "alloc.qed does not check clean"

report_mismatches
