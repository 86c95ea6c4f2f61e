#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit qed refuses to start on a corrupt, missing or unopenable image with
# an error line naming the file, leaving the file unchanged; a bad parameter
# is refused with a message naming it.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img

cd "$T"
"$QED_IMG" create -q -f qed disk.qed 1M

cp disk.qed bad.qed
printf '\377\377\377\377' | dd of=bad.qed bs=1 seek=8 conv=notrunc 2>/dev/null
cp bad.qed bad.orig
nbdkit_refuses "bad.qed.*QED table size is invalid" "$NBDKIT_QED_PLUGIN" bad.qed
cmp bad.qed bad.orig || fail "the corrupt image was modified"

nbdkit_refuses "missing.qed" "$NBDKIT_QED_PLUGIN" missing.qed
# Only QED images: a raw disk is never served by probing.
head -c 1M /dev/zero >plain.img
nbdkit_refuses "plain.img.*Image not in QED format" "$NBDKIT_QED_PLUGIN" plain.img
"$QED_IMG" create -q -u -f qed -b gone.raw -F raw orphan.qed 1M
nbdkit_refuses "gone.raw" "$NBDKIT_QED_PLUGIN" orphan.qed
nbdkit_refuses "file=" "$NBDKIT_QED_PLUGIN"
nbdkit_refuses "unknown parameter 'colour'" "$NBDKIT_QED_PLUGIN" disk.qed colour=blue

# Each bad value is refused with its key.
nbdkit_refuses "cache=sometimes" "$NBDKIT_QED_PLUGIN" disk.qed cache=sometimes
nbdkit_refuses "readonly=perhaps" "$NBDKIT_QED_PLUGIN" disk.qed readonly=perhaps
nbdkit_refuses "backing=maybe: expected dir, any or false" "$NBDKIT_QED_PLUGIN" disk.qed \
    backing=maybe
nbdkit_refuses "locking=sometimes: expected auto, on or off" "$NBDKIT_QED_PLUGIN" disk.qed \
    locking=sometimes
nbdkit_refuses "backing-dir=.*nowhere" "$NBDKIT_QED_PLUGIN" disk.qed backing-dir=nowhere
nbdkit_refuses "backing-dir=disk.qed: not a directory" "$NBDKIT_QED_PLUGIN" disk.qed \
    backing-dir=disk.qed
nbdkit_refuses "backing-dir=.* cannot be combined with backing=any" "$NBDKIT_QED_PLUGIN" \
    disk.qed backing-dir=. backing=any
nbdkit_refuses "backing-dir=.* cannot be combined with backing=false" "$NBDKIT_QED_PLUGIN" \
    disk.qed backing=off backing-dir=.

# backing=false serves the orphan, reading zeros where the backing would be.
serve_qed orphan.qed backing=false readonly=true
qemu-io -f raw -r -c 'read -q -P 0 0 1M' "$URI" | grep -q failed && fail "nonzero data"
stop_nbdkit
