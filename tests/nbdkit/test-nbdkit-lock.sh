#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit qed and other programs refuse each other an image as QEMU refuses
# itself. The image is opened read-only at startup (QEMU's read-only locks),
# so a second reader does not stop the server; the first client that may
# write makes it take the write lock, and when another process holds the
# image that client is refused with QEMU's words in the log, while a later
# client succeeds once the other process is gone. A program holding the
# image read-write stops nbdkit at startup.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-io

cd "$T"
"$QED_IMG" create -q -f qed disk.qed 4M
SOCK2=$T/second.sock
URI2="nbd+unix:///?socket=$SOCK2"

# expect_lock_refusal LOG: a writable client of the first server is refused
# and the log says why.
expect_lock_refusal() {
    if qemu-io -f raw -c 'write -q -P 0x11 0 4k' "$URI" >client.txt 2>&1 &&
        ! grep -q failed client.txt; then
        fail "a writable client was served while another process holds the image"
    fi
    grep -q 'Failed to get "write" lock' "$1" || fail "no lock message in: $(cat "$1")"
    grep -q 'Is another process using the image' "$1" ||
        fail "no lock message in: $(cat "$1")"
}

# A second nbdkit qed, read-only until its own first client.
serve_qed disk.qed 2>first.log
first=$NBDKIT_PID
start_nbdkit "$SOCK2" "$NBDKIT_QED_PLUGIN" disk.qed 2>second.log
second=$NBDKIT_PID
expect_lock_refusal first.log
kill "$second"
wait "$second" || true
qemu-io -f raw -c 'write -q -P 0x22 0 4k' "$URI" >client.txt 2>&1 ||
    fail "a client after the other server stopped was refused: $(cat client.txt)"
grep -q failed client.txt && fail "the write failed: $(cat client.txt)"
# Now that the first holds the image read-write, another nbdkit cannot even
# open it read-only: a startup error.
nbdkit_refuses 'Failed to get shared "write" lock' "$NBDKIT_QED_PLUGIN" disk.qed
nbdkit_refuses 'Failed to get shared "write" lock' -r "$NBDKIT_QED_PLUGIN" disk.qed
NBDKIT_PID=$first
stop_nbdkit

# qemu-io holding the image read-only (it does not share "write").
mkfifo qemu-io.in
qemu-io -r -f qed disk.qed <qemu-io.in >qemu-io.out 2>&1 &
qemu_io=$!
on_exit "kill $qemu_io 2>/dev/null"
exec 3>qemu-io.in
echo 'read -P 0x22 0 4k' >&3
i=0
until grep -q "read 4096/4096" qemu-io.out; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || fail "qemu-io did not open the image: $(cat qemu-io.out)"
    sleep 0.1
done
serve_qed disk.qed 2>third.log
expect_lock_refusal third.log
echo quit >&3   # not only EOF: nbdkit inherited the fifo's other end
exec 3>&-
wait "$qemu_io" || true
qemu-io -f raw -c 'write -q -P 0x33 0 4k' "$URI" >client.txt 2>&1 ||
    fail "a client after qemu-io exited was refused: $(cat client.txt)"
stop_nbdkit

# qemu-io holding it read-write: nbdkit does not start. (A new output file:
# the shell may still be truncating the old one when the loop below reads
# it, and the old one says "read 4096/4096" already.)
qemu-io -f qed disk.qed <qemu-io.in >qemu-io-rw.out 2>&1 &
qemu_io=$!
exec 3>qemu-io.in
echo 'read -P 0x33 0 4k' >&3
i=0
until grep -q "read 4096/4096" qemu-io-rw.out; do
    i=$((i + 1))
    [ "$i" -lt 200 ] || fail "qemu-io did not open the image: $(cat qemu-io-rw.out)"
    sleep 0.1
done
nbdkit_refuses 'Failed to get shared "write" lock' -r "$NBDKIT_QED_PLUGIN" disk.qed
echo quit >&3   # not only EOF: nbdkit inherited the fifo's other end
exec 3>&-
wait "$qemu_io" || true
qemu-img check -q disk.qed || fail "qemu-img check"
