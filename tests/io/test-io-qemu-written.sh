#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# QED images written by QEMU (qemu-io -f qed: data clusters, zero clusters,
# raw and QED backing chains, a NEED_CHECK image left by a killed writer)
# read back through qed-io exactly as QEMU reads them: a full hex dump by
# qed-io equals qemu-io's dump of `qemu-img convert -O raw`, and qed-io's
# map, alloc, length and info equal qemu-io's on the image itself.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/io/io-common.sh"
requires qemu-img qemu-io

cd "$T"
mkdir pristine

# qemu-io -f qed with a list of commands, all of which must succeed.
qemu_write() {
    img=$1
    shift
    for cmd in "$@"; do
        set -- "$@" -c "$cmd"
        shift
    done
    qemu-io -f qed "$img" "$@" >/dev/null || fail "qemu-io could not write $img"
}

# Plain image, 4 KiB clusters and 2-cluster tables: an L2 table covers 4 MiB.
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 pristine/plain.qed 6M
qemu_write pristine/plain.qed \
    'write -P 0x11 0 4k' \
    'write -P 0x12 5000 3000' \
    'write -P 0x13 4190208 8192' \
    'write -z 64k 16k' \
    'write -P 0x14 128k 64k' \
    'write -z 128k 8k' \
    'write -P 0x15 6143k 1k' \
    'write -P 0x16 1048676 1' \
    'write -P 0 2M 4k'

# Raw backing file, smaller than its overlay.
qemu-img create -q -f raw pristine/base.raw 5M
qemu-io -f raw pristine/base.raw -c 'write -P 0x41 0 3M' -c 'write -P 0x42 3M 2M' >/dev/null
(cd pristine && qemu-img create -q -f qed -o cluster_size=4k -b base.raw -F raw raw-ov.qed 6M)
qemu_write pristine/raw-ov.qed \
    'write -P 0x21 4196 200' \
    'write -z 8k 8k' \
    'write -P 0x22 5118k 4k' \
    'write -P 0x23 3M 64k' \
    'write -z 3M 4k' \
    'write -P 0x24 6140k 4k'

# A three-level chain: raw <- qed (64 KiB clusters) <- qed (4 KiB clusters).
qemu-img create -q -f raw pristine/chain0.raw 3M
qemu-io -f raw pristine/chain0.raw -c 'write -P 0x31 0 3M' >/dev/null
(cd pristine && qemu-img create -q -f qed -b chain0.raw -F raw chain1.qed 3584k)
qemu_write pristine/chain1.qed \
    'write -P 0x32 100k 100k' \
    'write -z 256k 128k' \
    'write -P 0x33 3000k 584k'
(cd pristine && qemu-img create -q -f qed -o cluster_size=4k -b chain1.qed -F qed chain2.qed 4M)
qemu_write pristine/chain2.qed \
    'write -P 0x34 150k 5k' \
    'write -z 180k 8k' \
    'write -P 0x35 300k 1' \
    'write -z 2M 64k' \
    'write -P 0x36 3580k 8k'

# A writer killed before it could clear NEED_CHECK.
qemu-img create -q -f qed pristine/dirty.qed 2M
set +e
qemu-io -f qed pristine/dirty.qed -c 'write -P 0x51 70000 70000' -c 'sigraise 9' \
    >/dev/null 2>&1
set -e
features=$(od -A n -t u8 -j 16 -N 8 pristine/dirty.qed | tr -d ' ')
[ "$features" = 2 ] || fail "dirty.qed should have NEED_CHECK set, features are $features"

# qed-io's full dump of IMG (opened with qed-io OPTIONS) must equal
# qemu-io's dump of QEMU's flattened copy of it.
check_dump() {
    img=$1
    shift
    qemu-img convert -U -O raw "pristine/$img" "$img.flat"
    size=$(stat -c %s "$img.flat")
    qemu-io -r -f raw -c "read -v 0 $size" "$img.flat" | io_filter >"$img.want"
    "$QED_IO" "$@" -c "read -v 0 $size" "pristine/$img" | io_filter >"$img.got"
    if ! cmp -s "$img.want" "$img.got"; then
        diff -u "$img.want" "$img.got" | head -40 >&2
        fail "qed-io $* reads $img differently from QEMU"
    fi
    echo "ok: dump of $img (qed-io $*)"
}

for img in plain.qed raw-ov.qed chain1.qed chain2.qed; do
    check_dump "$img" -r -f qed
    check_dump "$img" -r
    io_compare "meta-$img" -r -f qed "$img" <<'EOF'
map
alloc 0 1M
alloc 3M 1M
alloc 4092k 8k
length
info
EOF
done

# Read-only, the NEED_CHECK image is read as it is; opened writable, it is
# checked and repaired first, and reads the same.
check_dump dirty.qed -r -f qed
check_dump dirty.qed -f qed
qemu-img check -q pristine/dirty.qed || fail "dirty.qed does not pass qemu-img check after qed-io"
features=$(od -A n -t u8 -j 16 -N 8 pristine/dirty.qed | tr -d ' ')
[ "$features" = 0 ] || fail "qed-io left features $features on dirty.qed, expected 0"

[ -z "$IO_FAILED" ] || fail "qed-io's output differs from qemu-io's in:$IO_FAILED"
