#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-io and qed-img on a local overlay whose backing file is an NBD export
# (nbdkit file golden.raw on a Unix socket), when that server fails: gone at
# open, killed mid-request (nbdkit's delay filter widens the window),
# back again (a new open, and within one qed-io session: the first read
# after its return), failing reads (nbdkit's error filter), another export
# size after a restart. Every failure is an error naming the export's URI
# and libnbd's reason, exit 1, no crash or hang; the overlay stays clean
# under qemu-img check and keeps every write flushed before the fault.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io nbdkit python3 sha256sum mkfifo timeout
cd "$T"

python3 -c '
import random, sys
random.seed(11)
sys.stdout.buffer.write(random.randbytes(4 << 20))
' >golden.raw
head -c 6M /dev/zero >other-size.raw
GSOCK=$T/golden.sock
GURI="nbd+unix:///?socket=$GSOCK"
GOLDEN_PID=
golden() {
    if [ -n "$GOLDEN_PID" ]; then
        kill -9 "$GOLDEN_PID" 2>/dev/null || true
        wait "$GOLDEN_PID" 2>/dev/null || true
        GOLDEN_PID=
    fi
    if [ "$#" -gt 0 ]; then
        start_nbdkit "$GSOCK" "$@"
        GOLDEN_PID=$NBDKIT_PID
        # kill -9 at exit too: a preloaded ASan runtime can hang nbdkit's exit
        on_exit "kill -9 $GOLDEN_PID 2>/dev/null"
    fi
}
golden file golden.raw
"$QED_IMG" create -q -f qed -b "$GURI" -F raw ov.qed 4M
"$QED_IO" -c 'write -q -P 0x11 0 64k' ov.qed
cp golden.raw expect.raw
qemu-io -f raw -c 'write -q -P 0x11 0 64k' expect.raw

# qemu-img check without opening the backing file (the server may be gone).
check_overlay() {
    qemu-img check "json:{\"driver\":\"qed\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/ov.qed\"},\"backing\":null}" \
        >check.txt 2>&1 || fail "$1: qemu-img check: $(cat check.txt)"
}

# Runs a tool under a timeout: its exit status must be $1 (not a signal, not
# a timeout), and its stderr ($T/err.txt) must name the URI and say $2.
expect_error() {
    want=$1
    text=$2
    shift 2
    set +e
    timeout 30 "$@" >out.txt 2>err.txt
    got=$?
    set -e
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want: $(cat out.txt err.txt)"
    grep -qF "$GURI" err.txt || fail "'$*' did not name $GURI: $(cat err.txt)"
    grep -q "$text" err.txt || fail "'$*' did not say '$text': $(cat err.txt)"
}

# 1. The server gone at open.
golden
sum=$(sha256sum <ov.qed)
expect_error 1 "Connection refused\|No such file" "$QED_IO" -c 'read -q 0 64k' ov.qed
expect_error 1 "Connection refused\|No such file" "$QED_IMG" convert -O raw ov.qed out.raw
# qed-img info reads only the header (as qemu-img info, without the backing file).
"$QED_IMG" info ov.qed | grep -qF "backing file: $GURI" || fail "qed-img info without the server"
[ "$(sha256sum <ov.qed)" = "$sum" ] || fail "a failed open changed the overlay"

# qed-io reading commands from a FIFO (fd 3), so that the test acts between
# them; its prompts count the commands done.
start_session() {
    rm -f cmds
    mkfifo cmds
    "$QED_IO" ov.qed <cmds >session.out 2>session.err &
    SESSION_PID=$!
    on_exit "kill -9 $SESSION_PID 2>/dev/null"
    exec 3>cmds
    PROMPTS=1
}
# Sends one command and waits until qed-io is done with it.
send() {
    echo "$1" >&3
    PROMPTS=$((PROMPTS + 1))
    i=0
    while [ "$(grep -o 'qed-io> ' session.out | wc -l)" -lt "$PROMPTS" ]; do
        kill -0 "$SESSION_PID" 2>/dev/null || fail "qed-io exited: $(cat session.out session.err)"
        i=$((i + 1))
        [ "$i" -lt 600 ] || fail "qed-io hangs on '$1'"
        sleep 0.05
    done
}
end_session() {
    echo quit >&3
    exec 3>&-
    set +e
    timeout 30 sh -c "while kill -0 $SESSION_PID 2>/dev/null; do sleep 0.1; done"
    wait "$SESSION_PID"
    SESSION_STATUS=$?
    set -e
    [ "$SESSION_STATUS" -lt 128 ] || fail "qed-io died of signal $((SESSION_STATUS - 128))"
}
# The number of lines of session.out matching $1.
count() {
    grep -c "$1" session.out || true
}

# 2. The server killed mid-request (reads take a second): the read fails,
# the overlay stays writable, and what was flushed stays.
golden --filter=delay file golden.raw rdelay=1000ms
start_session
send 'write -q -P 0x22 64k 64k'
send 'flush'
echo 'read -q 1M 64k' >&3
PROMPTS=$((PROMPTS + 1))
sleep 0.4
golden
send 'write -q -P 0x33 2M 64k'
send 'flush'
end_session
[ "$(count 'read failed: Input/output error')" -eq 1 ] ||
    fail "the read under the kill: $(cat session.out session.err)"
grep -qF "ov.qed: read failed: Input/output error ($GURI: " session.err ||
    fail "the read under the kill did not name $GURI: $(cat session.err)"
[ "$(count 'failed')" -eq 1 ] || fail "a write or flush failed: $(cat session.out session.err)"
qemu-io -f raw -c 'write -q -P 0x22 64k 64k' -c 'write -q -P 0x33 2M 64k' expect.raw
check_overlay "after the kill"

# qed-img convert with the server killed mid-run: an error, no crash, no hang.
golden --filter=delay file golden.raw rdelay=1000ms
set +e
timeout 30 "$QED_IMG" convert -O raw ov.qed out.raw >convert.txt 2>&1 &
CONVERT_PID=$!
sleep 0.4
golden
wait "$CONVERT_PID"
status=$?
set -e
[ "$status" -eq 1 ] || fail "convert under the kill exited $status: $(cat convert.txt)"
grep -q "error while reading at byte [0-9]*: Input/output error" convert.txt ||
    fail "convert under the kill: $(cat convert.txt)"
check_overlay "after the convert"

# 3. The server back on the same socket: the image reopens and reads as
# golden + every write above.
golden file golden.raw
qemu-img compare -q ov.qed expect.raw || fail "after the server returned, QEMU reads otherwise"
"$QED_IMG" convert -O raw ov.qed out.raw
cmp out.raw expect.raw || fail "after the server returned, qed-img convert reads otherwise"
# Within one session: the server killed and back between two reads; the
# first read after its return succeeds (the pool connects anew).
start_session
send 'read -q -P 0x22 64k 64k'
send 'read -q 1M 64k'
golden
golden file golden.raw
send 'read -q 3M 64k'
send 'read -v 3M 16'
end_session
[ "$(count 'failed')" -eq 0 ] || fail "a read after the server returned: $(cat session.out session.err)"
[ "$SESSION_STATUS" -eq 0 ] || fail "qed-io exited $SESSION_STATUS after the server returned"
expect=$(qemu-io -f raw -c 'read -v 3M 16' golden.raw | head -1)
grep -qF "$expect" session.out || fail "the read after the return read otherwise: $(cat session.out)"

# 4. The server fails reads: EIO naming the URI, no crash; qed-img convert too.
golden --filter=error file golden.raw error-pread=EIO error-pread-rate=100%
expect_error 1 "Input/output error" "$QED_IO" -c 'read -q 1M 64k' ov.qed
grep -q "read failed: Input/output error" out.txt || fail "qed-io: $(cat out.txt)"
# Half the reads fail: each that does is reported, none crashes.
golden --filter=error file golden.raw error-pread=EIO error-pread-rate=50%
set +e
timeout 30 "$QED_IO" -c 'read -q 1M 64k' -c 'read -q 1088k 64k' -c 'read -q 1152k 64k' \
    -c 'read -q 1216k 64k' -c 'read -q 1280k 64k' -c 'read -q 1344k 64k' ov.qed >out.txt 2>err.txt
status=$?
set -e
[ "$status" -le 1 ] || fail "qed-io under failing reads exited $status: $(cat err.txt)"
[ "$(grep -c 'read failed' out.txt || true)" -eq "$(grep -c "($GURI: " err.txt || true)" ] ||
    fail "a failed read did not name the export: $(cat out.txt err.txt)"
golden file golden.raw
check_overlay "after failing reads"

# 5. Another export size after a restart: the next read fails and says so.
start_session
send 'read -q -P 0x11 0 64k'
golden
golden file other-size.raw
send 'read -q 1M 64k'
send 'write -q -P 0x44 3M 64k'
send 'flush'
end_session
grep -qF "$GURI: the export's size changed from 4194304 to 6291456 bytes" session.err ||
    fail "a new size: $(cat session.out session.err)"
[ "$(count 'failed')" -eq 1 ] || fail "after a new size: $(cat session.out session.err)"
qemu-io -f raw -c 'write -q -P 0x44 3M 64k' expect.raw
golden file golden.raw
qemu-img compare -q ov.qed expect.raw || fail "the overlay after the size change reads otherwise"
qemu-img check -q ov.qed || fail "the overlay is not clean at the end"
golden
