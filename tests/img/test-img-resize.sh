#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img resize: growing prints, exits and writes what qemu-img resize does
# (the same bytes), on QED and raw images, with relative sizes and
# --preallocation; the error paths word and exit as qemu-img's. Shrinking,
# which qemu-img refuses for QED, works: the data inside the new size is
# kept (qemu-img compare against a cut raw copy), qemu-img check is clean
# without leaks, the file is cut, and a grow afterwards reads zeros.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io cmp

mkdir "$T/q" "$T/o"

# new_pair NAME SIZE CREATE-OPTIONS...: the same image in q/ and o/.
new_pair() {
    name=$1
    size=$2
    shift 2
    qemu-img create -q "$@" "$T/q/$name" "$size"
    cp "$T/q/$name" "$T/o/$name"
}

# resize_both ARGS...: compares one resize on the two copies, then the files.
resize_both() {
    compare_runs "$T/q" "$T/o" resize "$@"
    for f in "$T"/q/*; do
        cmp "$f" "$T/o/${f##*/}" >/dev/null || mismatch "resize $*: ${f##*/} differs"
    done
}

new_pair x.qed 1M -f qed
new_pair c.qed 1M -f qed -o cluster_size=4k,table_size=2
new_pair r.raw 1M -f raw
resize_both x.qed 2M
resize_both x.qed +1M
resize_both -q x.qed 4M
resize_both x.qed +0
resize_both -f qed x.qed 5M
resize_both --preallocation=off x.qed 6M
resize_both c.qed 64M
resize_both c.qed 64M
resize_both -f raw r.raw 2M
resize_both -f raw r.raw +1M
resize_both -f raw --preallocation=falloc r.raw 4M
resize_both -f raw --preallocation=full r.raw 5M
resize_both -f raw --shrink r.raw -- -1M
resize_both -f raw --shrink r.raw 1M
resize_both r.raw 2M # probed: QEMU's warning
resize_both -f raw r.raw 3000001 # sizes that are not whole sectors
resize_both -f raw r.raw +1
resize_both -f raw --shrink r.raw -- -1
# Errors: nothing changes.
resize_both x.qed
resize_both x.qed 1M extra
resize_both -- x.qed
resize_both x.qed 1M # shrinking without --shrink
resize_both x.qed -- -1M
resize_both x.qed -1M
resize_both x.qed 1000
resize_both x.qed 0
resize_both x.qed -- -100M
resize_both x.qed 8E
resize_both x.qed foo
resize_both x.qed 1e6
resize_both x.qed 64T+
resize_both x.qed 18446744073709551616
resize_both x.qed 9223372036854775807
resize_both x.qed 100T
resize_both c.qed 65M
resize_both x.qed 6291457
resize_both --preallocation=bad x.qed 7M
resize_both --preallocation=falloc x.qed 7M
resize_both --preallocation=full x.qed 1M
resize_both -f raw --preallocation=metadata r.raw 9M
resize_both -f raw --shrink --preallocation=full r.raw 1M
resize_both -f qed r.raw 6M
resize_both -f foo x.qed 7M
resize_both -U x.qed 7M
resize_both --bogus x.qed 7M
assert_status 1 "$QED_IMG" resize "$T/o/missing.qed" 1M 2>/dev/null
report_mismatches

# Shrinking. The reference is a raw copy of the contents.
cd "$T"
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 s.qed 6M
# Given-up data first, so that it lies low in the file and the kept data
# has to move down; the new end cuts a cluster that holds data.
qemu-io -c 'write -P 1 4M 2M' -c 'write -P 2 0 1M' -c 'write -z 1M 64k' \
    -c 'write -P 3 2M 1M' -c 'write -P 4 3M 64k' s.qed >/dev/null
qemu-img convert -f qed -O raw s.qed s.raw
before=$(stat -c %s s.qed)
new=$((3 * 1048576 + 1536))

set +e
cp s.qed qemu.qed
qemu-img resize --shrink qemu.qed $new >/dev/null 2>&1
qemu_status=$?
"$QED_IMG" resize --shrink s.qed $new >out 2>err
status=$?
set -e
[ "$qemu_status" -ne 0 ] || fail "qemu-img shrank a QED image (this test expects it not to)"
[ "$status" -eq 0 ] || { cat err >&2; fail "qed-img resize --shrink exited $status"; }
[ "$(cat out)" = "Image resized." ] || fail "qed-img resize --shrink printed: $(cat out)"
[ ! -s err ] || fail "qed-img resize --shrink wrote to stderr: $(cat err)"
qemu-img check s.qed >check.out || { cat check.out >&2; fail "qemu-img check after shrink"; }
grep -q "No errors were found" check.out || fail "qemu-img check: $(cat check.out)"
size=$(qemu-img info --output=json s.qed | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p')
[ "$size" -eq $new ] || fail "virtual size $size after shrink, expected $new"
after=$(stat -c %s s.qed)
[ "$after" -lt "$before" ] || fail "file not cut: $before -> $after bytes"
truncate -s $new s.raw
qemu-img compare -q -f qed -F raw s.qed s.raw || fail "data inside the new size changed"
qed_check=$("$QED_IMG" check --output=json s.qed)
case $qed_check in
*leaks*) fail "qed-img check finds leaks: $qed_check" ;;
esac

# Grow again: zeros past the old end (the cut cluster's tail included).
"$QED_IMG" resize -q s.qed 6M
truncate -s 6M s.raw
qemu-img compare -q -f qed -F raw s.qed s.raw || fail "stale data after shrink and grow"
qemu-img check -q s.qed || fail "qemu-img check after the grow"

# Shrink by a relative size, to a table boundary, and to one sector.
"$QED_IMG" resize -q --shrink s.qed -- -2M
truncate -s 4M s.raw
qemu-img compare -q -f qed -F raw s.qed s.raw || fail "shrink to a table boundary"
qemu-img check -q s.qed || fail "qemu-img check after shrink to 4M"
"$QED_IMG" resize -q --shrink s.qed 512
truncate -s 512 s.raw
qemu-img compare -q -f qed -F raw s.qed s.raw || fail "shrink to 512 bytes"
qemu-img check -q s.qed || fail "qemu-img check after shrink to 512"
[ "$(stat -c %s s.qed)" -le $((4096 + 2 * 8192 + 2 * 8192 + 4096)) ] ||
    fail "a one-sector image takes $(stat -c %s s.qed) bytes"

# With a backing file: the overlay's data inside the new size stays, the
# rest of it comes from the backing file, as before.
qemu-img create -q -f raw b.raw 4M
qemu-io -f raw -c 'write -P 5 0 4M' b.raw >/dev/null
qemu-img create -q -f qed -b b.raw -F raw ov.qed 4M
qemu-io -c 'write -P 6 3M 1M' -c 'write -P 7 0 64k' ov.qed >/dev/null
qemu-img convert -O raw ov.qed ov.raw
"$QED_IMG" resize -q --shrink ov.qed 2M
truncate -s 2M ov.raw
qemu-img compare -q -F raw ov.qed ov.raw || fail "shrink with a backing file"
qemu-img check -q ov.qed || fail "qemu-img check after shrink with a backing file"

# Growing over a longer backing file (qemu-img refuses: "Block driver does
# not support requested flags"): the new part reads zeros, not the backing
# file, also in the cluster that the old end cut, and after a shrink.
qemu-img create -q -f qed -b b.raw -F raw g.qed 1000k
qemu-io -c 'write -P 8 512k 4k' g.qed >/dev/null
qemu-img convert -O raw g.qed g.raw
cp g.qed gq.qed
assert_status 1 qemu-img resize gq.qed 3M 2>/dev/null
"$QED_IMG" resize -q g.qed 3M
truncate -s 3M g.raw
qemu-img compare -q -F raw g.qed g.raw || fail "a grow over a longer backing file shows it"
qemu-img check -q g.qed || fail "qemu-img check after a grow over a backing file"
"$QED_IMG" resize -q --shrink g.qed 700k
"$QED_IMG" resize -q g.qed 4M
truncate -s 700k g.raw
truncate -s 4M g.raw
qemu-img compare -q -F raw g.qed g.raw || fail "shrink and grow over a backing file"
qemu-img check -q g.qed || fail "qemu-img check after shrink and grow over a backing file"

# A shrink of a corrupt image is refused before anything changes: over damaged
# tables it could not cut the file or leave the image clean.
qemu-img create -q -f qed -o cluster_size=4k bad.qed 4M
qemu-io -c 'write -P 3 0 8k' -c 'write -P 4 3M 4k' bad.qed >/dev/null
python3 - bad.qed <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(40); l1 = struct.unpack('<Q', f.read(8))[0]
    f.seek(l1); l2 = struct.unpack('<Q', f.read(8))[0]
    f.seek(l2 + 8); f.write(struct.pack('<Q', 1 << 40))  # past the end of the file
PY
sum=$(md5sum <bad.qed)
assert_status 2 qemu-img check -q bad.qed
assert_status 1 "$QED_IMG" resize --shrink bad.qed 2M 2>err.txt
grep -q "bad.qed: cannot shrink an image with 1 corruptions" err.txt || fail "corrupt shrink: $(cat err.txt)"
[ "$(md5sum <bad.qed)" = "$sum" ] || fail "a refused shrink changed the image"
"$QED_IMG" check -q -r all bad.qed
"$QED_IMG" resize -q --shrink bad.qed 2M
qemu-img check -q bad.qed || fail "qemu-img check after a shrink of a repaired image"

# A read-only shrink changes nothing.
cp s.qed ro.qed
chmod a-w ro.qed
if [ "$(id -u)" -ne 0 ]; then
    assert_status 1 "$QED_IMG" resize --shrink ro.qed 0 2>/dev/null
fi
echo "OK: shrink"
