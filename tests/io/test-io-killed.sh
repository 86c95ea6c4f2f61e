#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A qed-io killed (SIGKILL) with allocating writes that no flush covered
# leaves an image that QEMU's qemu-img check calls consistent but for leaks
# (exit 0 or 3), never corrupt: the file is long enough before an L2 entry
# points into it. Every write a flush covered is kept; the entries of later
# allocating writes wait in memory for the next flush (as qcow2's do), so a
# kill may drop them, never corrupt them. Without a backing file an allocating write writes only the
# bytes it covers, so before the file grew ahead of allocation the last data
# cluster could stick out past the end of the file, and qemu-img check -r all
# then dropped its data. After the kill, `qed-img check -r all` leaves an
# image qemu-img check calls clean, and qemu-img's own repair keeps every
# write that a flush covered.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io mkfifo

# Starts qed-io on $1 reading commands from a FIFO (fd 3 here); it prints
# its prompt before each command, so the prompts count the commands done.
start_qed_io() {
    rm -f "$T/cmds"
    mkfifo "$T/cmds"
    "$QED_IO" "$1" <"$T/cmds" >"$T/out" 2>&1 &
    QED_IO_PID=$!
    exec 3>"$T/cmds"
}

# Waits until qed-io has shown $1 prompts, that is, finished $1 - 1 commands.
wait_prompts() {
    i=0
    while [ "$(grep -o 'qed-io> ' "$T/out" | wc -l)" -lt "$1" ]; do
        kill -0 "$QED_IO_PID" 2>/dev/null || fail "qed-io exited: $(cat "$T/out")"
        i=$((i + 1))
        [ "$i" -lt 1200 ] || fail "qed-io did not get through its commands"
        sleep 0.05
    done
}

kill_qed_io() {
    kill -9 "$QED_IO_PID"
    wait "$QED_IO_PID" 2>/dev/null || true
    exec 3>&-
}

# After the kill: QEMU sees leaks at most; QEMU's repair keeps the data of
# every write in $T/written; ours leaves a clean image with the same data.
# ($T/check.txt keeps what qemu-img check said, for a failure's message.)
check_killed() {
    name=$1
    set +e
    qemu-img check "$T/x.qed" >"$T/check.txt" 2>&1
    status=$?
    set -e
    if [ "$status" -ne 0 ] && [ "$status" -ne 3 ]; then
        cat "$T/check.txt" >&2
        fail "$name: qemu-img check of the killed image exited $status"
    fi
    # QEMU's repair leaves leaks alone (docs/format.md): 0 or 3.
    cp "$T/x.qed" "$T/qemu.qed"
    set +e
    qemu-img check -q -r all "$T/qemu.qed"
    status=$?
    set -e
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] ||
        fail "$name: qemu-img check -r all of the killed image exited $status"
    assert_status 0 "$QED_IMG" check -q -r all "$T/x.qed"
    assert_status 0 qemu-img check -q "$T/x.qed"
    while read -r pattern offset len; do
        for img in "$T/x.qed" "$T/qemu.qed"; do
            qemu-io -f qed -c "read -q -P $pattern $offset $len" "$img" >"$T/read.txt" 2>&1 ||
                fail "$name: $img lost the write at $offset: $(cat "$T/read.txt")"
            grep -q "Pattern verification failed" "$T/read.txt" &&
                fail "$name: $img: other data at $offset after the repair"
        done
    done <"$T/written"
    return 0
}

# Round 1: 4 KiB clusters, two-cluster tables (4 MiB each): 512-byte writes
# at the start of clusters all over a 64 MiB disk, so that new L2 tables and
# partly written clusters keep coming; killed once every write is done.
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 "$T/x.qed" 64M
start_qed_io "$T/x.qed"
: >"$T/written"
n=0
for off in $(seq 0 331 16000); do
    pattern=$((n % 200 + 1))
    offset=$((off * 4096))
    echo "write -q -P $pattern $offset 512" >&3
    echo "$pattern $offset 512" >>"$T/written"
    n=$((n + 1))
done
echo "flush" >&3
wait_prompts $((n + 2))
kill_qed_io
check_killed "4k clusters, every write done"

# Round 2: 64 KiB clusters (QEMU's default), 4 KiB writes into a third of
# the clusters of a 1 GiB disk, a flush after the first 200, killed after
# the first 200 and some more.
qemu-img create -q -f qed "$T/x.qed" 1G
start_qed_io "$T/x.qed"
: >"$T/written"
n=0
for c in $(seq 0 3 1200); do
    pattern=$((n % 200 + 1))
    offset=$((c * 65536 + 8192))
    echo "write -q -P $pattern $offset 4096" >&3
    [ "$n" -ge 200 ] || echo "$pattern $offset 4096" >>"$T/written"
    n=$((n + 1))
    [ "$n" -ne 200 ] || echo "flush" >&3
done
wait_prompts 202
kill_qed_io
check_killed "64k clusters, killed halfway"

# Round 3: aio writes from qed-io's thread pool, killed with requests in
# flight: only what completed counts, and nothing may be corrupt.
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 "$T/x.qed" 64M
start_qed_io "$T/x.qed"
: >"$T/written"
for off in $(seq 0 97 16000); do
    echo "aio_write -q -P 7 $((off * 4096 + 1024)) 1024" >&3
done
wait_prompts 60
kill_qed_io
check_killed "aio writes in flight"
