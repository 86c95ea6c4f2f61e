#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# With nbdkit -r or readonly=true, nbdkit qed never changes the image: an
# image marked NEED_CHECK, with unknown autoclear bits and a leaked cluster
# a repair would cut off, keeps its checksum while clients read it, as with
# qemu-nbd -r; the same under the filter. Without either, the image stays
# untouched until the first connection that may write, which makes it
# writable (repairing it then), and the writes land.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdinfo nbdcopy sha256sum

cd "$T"
"$QED_IMG" create -q -f qed disk.qed 4M
qemu-io -f qed -c 'write -q -P 0x5a 0 128k' disk.qed
truncate -s +64k disk.qed                 # a leaked cluster at the end
set_header_bits disk.qed 0x2 0x5          # NEED_CHECK, two unknown autoclear bits
sum=$(sha256sum <disk.qed)

# read_all: the clients a user would point at a read-only export.
read_all() {
    qemu-io -f raw -r -c 'read -q -P 0x5a 0 128k' -c 'read -q -P 0 128k 3968k' "$URI" \
        >read.txt 2>&1
    grep -q failed read.txt && fail "reads failed: $(cat read.txt)"
    nbdcopy "$URI" copy.raw
    nbdinfo --map "$URI" >/dev/null
    set +e
    nbdinfo --can write "$URI"
    can_write=$?
    set -e
    [ "$can_write" -eq 2 ] || fail "nbdinfo --can write exited $can_write, expected 2"
}

serve_qed -r disk.qed
read_all
stop_nbdkit
[ "$(sha256sum <disk.qed)" = "$sum" ] || fail "nbdkit -r changed the image"

serve_qed disk.qed readonly=true
read_all
if qemu-io -f raw -c 'write -q -P 0x77 0 4k' "$URI" >write.txt 2>&1 &&
    ! grep -q "write failed" write.txt; then
    fail "a write to readonly=true went through"
fi
stop_nbdkit
[ "$(sha256sum <disk.qed)" = "$sum" ] || fail "readonly=true changed the image"

# The filter likewise, with -r and with qed-readonly=true.
start_nbdkit "$SOCK" -r --filter="$FILTER" file disk.qed
read_all
stop_nbdkit
start_nbdkit "$SOCK" --filter="$FILTER" file disk.qed qed-readonly=true
read_all
stop_nbdkit
[ "$(sha256sum <disk.qed)" = "$sum" ] || fail "the filter changed a read-only image"

# Without either: nothing is written before a client connects...
serve_qed disk.qed
[ "$(sha256sum <disk.qed)" = "$sum" ] || fail "nbdkit changed the image before any client"
# ...and the first client may write: the image was repaired and made
# writable for it.
qemu-io -f raw -c 'write -q -P 0x77 64k 4k' "$URI" >write.txt 2>&1
grep -q failed write.txt && fail "the write failed: $(cat write.txt)"
nbdinfo --can write "$URI" || fail "a second client cannot write"
stop_nbdkit
qemu-img check -q disk.qed || fail "qemu-img check after the writable session"
qemu-io -f qed -r -c 'read -q -P 0x5a 0 64k' -c 'read -q -P 0x77 64k 4k' \
    -c 'read -q -P 0x5a 68k 60k' disk.qed >read.txt
grep -q failed read.txt && fail "the written image reads wrong: $(cat read.txt)"
[ "$(header_bits disk.qed)" = "0x0 0x0" ] ||
    fail "NEED_CHECK or autoclear bits left: $(header_bits disk.qed)"
