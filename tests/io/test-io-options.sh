#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-io takes the program and open options that qemu-io's users (and
# QEMU's iotests, which pass "--cache writeback --aio threads -f qed" on
# every call) give it: the same output, errors and exit status as qemu-io
# for --aio/-i/-k, -d and the open errors; a clear refusal, exit 1, for
# what qed-io does not have (--image-opts, --object, -s, -C).
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/io/io-common.sh"
requires qemu-img qemu-io python3

P=$T/pristine
mkdir "$P"
qemu-img create -q -f qed "$P/a.qed" 1M
qemu-io -c 'write -q -P 7 0 64k' "$P/a.qed"
qemu-img create -q -f qed -b missing.raw -F raw -u "$P/nobase.qed" 1M
cp "$P/a.qed" "$P/badl1.qed"
python3 - "$P/badl1.qed" <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(40); f.write(struct.pack('<Q', 12345))  # l1_table_offset, unaligned
PY

io_compare aio-threads --cache writeback --aio threads -f qed a.qed <<'C'
read -P 7 0 64k
C
io_compare aio-short -i threads a.qed <<'C'
read -P 7 0 512
C
io_compare aio-io-uring --aio io_uring a.qed <<'C'
read -P 7 0 512
C
io_compare aio-native-direct -n --aio native a.qed <<'C'
read -P 7 0 512
C
io_compare aio-native-k -k -t none a.qed <<'C'
read -P 7 0 512
C
io_compare aio-native-cached --aio native a.qed <<'C'
read 0 512
C
io_compare aio-bad --aio foo a.qed <<'C'
read 0 512
C
io_compare discard-bad -d foo a.qed <<'C'
read 0 512
C
# discard=ignore: the discard succeeds and the data stays.
io_compare discard-ignore -d ignore a.qed <<'C'
discard 0 64k
read -P 7 0 64k
C
io_compare open-options <<'C'
open -d foo a.qed
open -i foo a.qed
open -i native a.qed
open -k a.qed
open -n -k -d unmap -i native a.qed
read -P 7 0 512
C
io_compare open-table-offset badl1.qed <<'C'
read 0 512
C
io_compare open-missing-backing nobase.qed <<'C'
read 0 512
C
io_compare open-missing-file missing.qed <<'C'
read 0 512
C
[ -z "$IO_FAILED" ] || fail "qed-io's output differs from qemu-io's in:$IO_FAILED"

# What qed-io does not have: refused by name, exit 1, the image untouched.
cd "$P"
sum=$(md5sum <a.qed)
for opt in --image-opts "--object secret,id=s0,data=x" -s --snapshot -C --copy-on-read; do
    # shellcheck disable=SC2086 # the option and its argument as two words
    assert_status 1 "$QED_IO" $opt -c 'write 0 512' a.qed 2>err.txt
    grep -q "not supported" err.txt || fail "$opt: $(cat err.txt)"
done
assert_status 1 "$QED_IO" -c 'open -s a.qed' 2>err.txt
grep -q "^qed-io: -s is not supported" err.txt || fail "open -s: $(cat err.txt)"
# -T is accepted with a warning, as qemu-io warns about an unknown event.
"$QED_IO" -T foo -c 'read -P 7 0 512' a.qed >out.txt 2>err.txt
grep -q "warning: tracing is not supported" err.txt || fail "-T: $(cat err.txt)"
grep -q "^read 512/512" out.txt || fail "-T: $(cat out.txt)"
[ "$(md5sum <a.qed)" = "$sum" ] || fail "a refused option changed the image"

# header_size 0: qemu-io opens it; qed-io refuses it and names the problem
# (not "too large").
cp a.qed hs0.qed
printf '\000\000\000\000' | dd of=hs0.qed bs=1 seek=12 conv=notrunc status=none
assert_status 1 "$QED_IO" -c 'read 0 512' hs0.qed 2>err.txt
grep -q "^qed-io: can't open device hs0.qed: QED header size is 0 clusters" err.txt ||
    fail "header_size 0: $(cat err.txt)"
echo "OK"
