#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit --filter=qed over a container that cannot grow (nbdkit 1.32 gives
# a filter no way to resize the plugin's disk): once the room is used up, a
# write that needs new clusters fails with ENOSPC, everything written before
# reads back, writes into allocated clusters still work, and after the
# session qemu-img check finds no error, only the unused tail of the
# container as leaked clusters (exit 3), or nothing (exit 0).
# Containers: a file grown with truncate -s +N (file plugin), and the memory
# plugin, reached through the nbd plugin so that QEMU can check it after.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy
[ -f "$FILTER" ] || fail "$FILTER was not built"

cd "$T"
# 64 KiB clusters, 256 KiB tables: header + L1 = 320 KiB. Room for one L2
# table and eight data clusters; the library may keep a table's worth in
# reserve (for the L2 table an allocation may need), so four must fit.
"$QED_IMG" create -q -f qed disk.qed 64M
room=$((4 * 65536 + 8 * 65536))

# session URI: new clusters (one per MiB, all under one L2 table) until the
# container is full, then a write into an allocated cluster, a flush, and
# reads of everything.
session() {
    cmds=""
    for i in $(seq 0 15); do
        cmds="$cmds -c 'write -P $((i + 1)) ${i}M 64k'"
    done
    eval "qemu-io -f raw $cmds \"\$1\"" >writes.txt 2>&1 || true
    fit=$(grep -c "^wrote 65536/65536" writes.txt || true)
    [ "$fit" -ge 4 ] && [ "$fit" -le 8 ] || fail "$fit clusters fit: $(cat writes.txt)"
    # The first writes fit, every later one failed with ENOSPC.
    for i in $(seq 0 $((fit - 1))); do
        grep -q "^wrote 65536/65536 bytes at offset $((i * 1048576))\$" writes.txt ||
            fail "write $i did not fit: $(cat writes.txt)"
    done
    [ "$(grep -c "write failed: No space left on device" writes.txt)" -eq $((16 - fit)) ] ||
        fail "expected ENOSPC after $fit writes: $(cat writes.txt)"
    cmds="-c 'write -q -P 0x77 0 4k' -c flush -c 'read -q -P 0x77 0 4k'"
    cmds="$cmds -c 'read -q -P 1 4k 60k'"
    for i in $(seq 1 15); do
        pattern=$((i < fit ? i + 1 : 0))
        cmds="$cmds -c 'read -q -P $pattern ${i}M 64k'"
    done
    eval "qemu-io -f raw $cmds \"\$1\"" >after.txt 2>&1 ||
        fail "after ENOSPC: $(cat after.txt)"
    grep -q failed after.txt && fail "after ENOSPC: $(cat after.txt)"
    return 0
}

# check_image QEMU-IMG-CHECK-ARGS...: no errors; leaks only past the image.
check_image() {
    set +e
    qemu-img check --output=json "$@" >check.json
    status=$?
    set -e
    [ "$status" -eq 0 ] || [ "$status" -eq 3 ] || fail "qemu-img check exited $status"
    python3 - "$container" <<'PY' || fail "qemu-img check: $(cat check.json)"
import json, sys
r = json.load(open("check.json"))
container = int(sys.argv[1])
assert r.get("corruptions", 0) == 0 and r.get("check-errors", 0) == 0, r
# In use: the header cluster, the L1 and the one L2 table (4 clusters
# each), and the data clusters; the rest of the container is its tail.
tail = container - (1 + 4 + 4 + r["allocated-clusters"]) * 65536
assert r.get("leaks", 0) * 65536 == tail, (r, container)
PY
}

# The file plugin over a file grown by the room.
cp disk.qed file.qed
truncate -s +$room file.qed
container=$(stat -c %s file.qed)
start_nbdkit "$SOCK" --filter="$FILTER" file file.qed
session "$URI"
stop_nbdkit
check_image file.qed
qemu-io -f qed -r -c 'read -q -P 0x77 0 4k' -c 'read -q -P 2 1M 64k' -c 'read -q -P 4 3M 64k' \
    file.qed >qemu.txt
grep -q failed qemu.txt && fail "QEMU reads differ: $(cat qemu.txt)"

# The memory plugin: a second server holds the container; the filter reaches
# it through the nbd plugin, and QEMU checks it there afterwards.
container=$(($(stat -c %s disk.qed) + room))
MEM_SOCK=$T/mem.sock
MEM_URI="nbd+unix:///?socket=$MEM_SOCK"
start_nbdkit "$MEM_SOCK" memory "$container"
mem_pid=$NBDKIT_PID
nbdcopy disk.qed "$MEM_URI"
start_nbdkit "$SOCK" --filter="$FILTER" nbd socket="$MEM_SOCK"
session "$URI"
stop_nbdkit
check_image -f qed "$MEM_URI"
NBDKIT_PID=$mem_pid
stop_nbdkit

# The filter straight over an in-memory plugin (data, the memory plugin's
# allocator with contents to start from).
start_nbdkit "$SOCK" --filter="$FILTER" data "<disk.qed" size="$container"
session "$URI"
stop_nbdkit
