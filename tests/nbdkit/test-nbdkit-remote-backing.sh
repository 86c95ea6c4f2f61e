#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit qed serving a local overlay whose backing file is an NBD export
# (nbdkit file golden.raw, on a Unix socket and on a free localhost TCP
# port). Without backing-remote=true the plugin refuses at startup, naming
# the parameter; with it, reads equal golden plus the overlay's writes
# (qemu-img compare), writes land in the overlay only (golden's sha256
# unchanged) and qemu-img check is clean. A hostile header naming
# nbd://127.0.0.1:PORT/ makes nothing connect to PORT unless
# backing-remote=true (a listener there counts connections), and a backing
# URI with ?tls-psk-file= never makes libnbd open that file. Killing the
# golden server while a client reads: the client gets EIO, nbdkit stays up,
# and once the golden server is back a new client reads fine.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy nbdinfo python3 sha256sum
cd "$T"

# Serves golden.raw over TCP on a free port (start_nbdkit_tcp): sets
# TCP_PORT, TCP_PID.
start_golden_tcp() {
    start_nbdkit_tcp file golden.raw
    TCP_PORT=$NBDKIT_PORT
    TCP_PID=$NBDKIT_PID
    on_exit "kill -9 $TCP_PID 2>/dev/null"
}

# 4 MiB of golden data, and its sha256 to show it never changes.
python3 -c '
import random, sys
random.seed(11)
sys.stdout.buffer.write(random.randbytes(4 << 20))
' >golden.raw
golden_sum=$(sha256sum <golden.raw)
GSOCK=$T/golden.sock
GURI="nbd+unix:///?socket=$GSOCK"
# Servers this test kills itself are killed with -9 at exit too: nbdkit
# with the ASan runtime preloaded can hang in its exit (see stop_nbdkit).
start_nbdkit "$GSOCK" file golden.raw
GOLDEN_PID=$NBDKIT_PID
on_exit "kill -9 $GOLDEN_PID 2>/dev/null"

# The overlay, with writes of its own (qed-io follows remote backing files,
# as qemu-io), and what the disk must read as.
"$QED_IMG" create -q -f qed -b "$GURI" -F raw ov.qed 4M
"$QED_IO" -c 'write -q -P 0x11 64k 64k' -c 'write -q -P 0x22 1M 4k' ov.qed
cp golden.raw expect.raw
qemu-io -f raw -c 'write -q -P 0x11 64k 64k' -c 'write -q -P 0x22 1M 4k' expect.raw
cp ov.qed ov.orig

# Refused at startup without backing-remote=true, whatever the local policy.
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" ov.qed
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" ov.qed backing=any
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" ov.qed readonly=true
# The plugin serves local files; an NBD address as its file points at the
# filter instead of failing in realpath.
nbdkit_refuses "the qed plugin serves local files; .*--filter=qed nbd" "$NBDKIT_QED_PLUGIN" \
    "nbd+unix:///?socket=$GSOCK"
cmp ov.qed ov.orig || fail "a refused start changed the overlay"

# With it: reads are golden plus the overlay's writes; a client's writes
# land in the overlay.
serve_qed ov.qed backing-remote=true
qemu-img compare -q -f raw -F raw "$URI" expect.raw ||
    fail "reads through the plugin differ from golden + the overlay's writes"
qemu-io -f raw -c 'write -q -P 0x33 2M 64k' -c 'write -q -P 0x44 3M 512' "$URI"
qemu-io -f raw -c 'write -q -P 0x33 2M 64k' -c 'write -q -P 0x44 3M 512' expect.raw
qemu-img compare -q -f raw -F raw "$URI" expect.raw || fail "reads after writes differ"
stop_nbdkit
[ "$(sha256sum <golden.raw)" = "$golden_sum" ] || fail "a write reached golden.raw"
qemu-img compare -q ov.qed expect.raw || fail "QEMU reads the overlay otherwise"
qemu-img check -q ov.qed || fail "qemu-img check: the overlay is not clean"

# The same over TCP.
start_golden_tcp
"$QED_IMG" create -q -f qed -b "nbd://127.0.0.1:$TCP_PORT/" -F raw tcp.qed 4M
cp golden.raw expect-tcp.raw
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" tcp.qed
serve_qed tcp.qed backing-remote=true
qemu-io -f raw -c 'write -q -P 0x55 192k 64k' "$URI"
qemu-io -f raw -c 'write -q -P 0x55 192k 64k' expect-tcp.raw
qemu-img compare -q -f raw -F raw "$URI" expect-tcp.raw || fail "TCP: reads differ"
stop_nbdkit
[ "$(sha256sum <golden.raw)" = "$golden_sum" ] || fail "TCP: a write reached golden.raw"
qemu-img compare -q tcp.qed expect-tcp.raw || fail "TCP: QEMU reads the overlay otherwise"
qemu-img check -q tcp.qed || fail "TCP: qemu-img check: the overlay is not clean"
kill "$TCP_PID"
wait "$TCP_PID" 2>/dev/null || true

# A hostile header: its backing file names a TCP port where a listener
# counts the connections it accepts (and closes them: no NBD there).
python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(8)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    c, _ = s.accept()
    with open(sys.argv[2], "a") as f:
        f.write("connected\n")
    c.close()
' listener.port listener.log &
LISTENER_PID=$!
on_exit "kill $LISTENER_PID 2>/dev/null"
i=0
while [ ! -s listener.port ]; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || fail "the listener did not start"
    sleep 0.1
done
LPORT=$(cat listener.port)
touch listener.log
connections() {
    wc -l <listener.log
}
# The listener really counts: a client that connects is seen.
nbdinfo "nbd://127.0.0.1:$LPORT/" >/dev/null 2>&1 || true
[ "$(connections)" -eq 1 ] || fail "the listener did not see a test connection"
: >listener.log

"$QED_IMG" create -q -u -f qed -b "nbd://127.0.0.1:$LPORT/" -F raw hostile.qed 1M
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" hostile.qed
nbdkit_refuses "backing-remote=true" "$NBDKIT_QED_PLUGIN" hostile.qed backing=any
[ "$(connections)" -eq 0 ] || fail "the default policy let the header connect to $LPORT"
serve_qed hostile.qed backing=false readonly=true
nbdcopy "$URI" - | cmp -s -n 1048576 - /dev/zero || fail "backing=false: not zeros"
stop_nbdkit
[ "$(connections)" -eq 0 ] || fail "backing=false let the header connect to $LPORT"
nbdkit_refuses "hostile.qed" "$NBDKIT_QED_PLUGIN" hostile.qed backing-remote=true
[ "$(connections)" -ge 1 ] || fail "backing-remote=true: nothing connected to $LPORT"

# A header's URI may not make libnbd read local files (tls-psk-file=...),
# though the operator's own URI may: a TLS server that needs the key shows
# the difference. Checked by the error text and, where strace works here,
# by the files qed-io opens.
printf 'alice:%s\n' 0123456789abcdef0123456789abcdef >secret.psk
TSOCK=$T/tls.sock
start_nbdkit "$TSOCK" --tls=require --tls-psk="$T/secret.psk" file golden.raw
on_exit "kill -9 $NBDKIT_PID 2>/dev/null"
for psk in "$T/secret.psk" /etc/passwd; do
    rm -f psk.qed
    "$QED_IMG" create -q -u -f qed -b "nbds+unix://alice@/?socket=$TSOCK&tls-psk-file=$psk" \
        -F raw psk.qed 4M
    nbdkit_refuses "local file access (tls-psk-file) is not allowed" \
        "$NBDKIT_QED_PLUGIN" psk.qed backing-remote=true
    grep -q "root:" "$T/refusal.txt" && fail "the refusal shows /etc/passwd"
    assert_status 1 "$QED_IO" -c 'read -q 0 4k' psk.qed >psk.out 2>&1
    grep -q "local file access (tls-psk-file) is not allowed" psk.out ||
        fail "qed-io on a header naming tls-psk-file=$psk: $(cat psk.out)"
done
# The operator's own URI reads the key and the export.
TURI="nbds+unix://alice@/?socket=$TSOCK&tls-psk-file=$T/secret.psk"
"$QED_IO" -f raw -c 'read -q 0 4k' "$TURI" >psk.out 2>&1 ||
    fail "qed-io on the operator's TLS URI: $(cat psk.out)"
# (LeakSanitizer does not run under ptrace.)
if command -v strace >/dev/null 2>&1 && strace -o /dev/null true 2>/dev/null; then
    ASAN_OPTIONS=detect_leaks=0
    export ASAN_OPTIONS
    "$QED_IMG" create -q -u -f qed -b "$TURI" -F raw psk.qed 4M
    set +e
    strace -f -e trace=open,openat -o trace.txt "$QED_IO" -c 'read -q 0 4k' psk.qed >/dev/null 2>&1
    set -e
    grep -q "psk.qed" trace.txt || fail "strace saw no open of psk.qed: $(head trace.txt)"
    grep -q "secret.psk" trace.txt && fail "libnbd opened the header's tls-psk-file"
    # The control: the same URI given by the operator opens the key file.
    strace -f -e trace=open,openat -o trace.txt "$QED_IO" -f raw -c 'read -q 0 4k' "$TURI" \
        >/dev/null 2>&1
    grep -q "secret.psk" trace.txt || fail "strace did not see libnbd open the caller's key file"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
fi

# The golden server killed while a client reads through the plugin: EIO
# for the client, nbdkit stays up, and once golden is back a new client
# reads fine.
stop_nbdkit_pid() {
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
stop_nbdkit_pid "$GOLDEN_PID"
start_nbdkit "$GSOCK" --filter=delay file golden.raw rdelay=1000ms
GOLDEN_PID=$NBDKIT_PID
on_exit "kill -9 $GOLDEN_PID 2>/dev/null"
serve_qed ov.qed backing-remote=true
PLUGIN_PID=$NBDKIT_PID
set +e
qemu-io -f raw -r -c 'read -q 3840k 64k' "$URI" >client.out 2>&1 &
CLIENT=$!
sleep 0.4
stop_nbdkit_pid "$GOLDEN_PID"
timeout 20 sh -c "while kill -0 $CLIENT 2>/dev/null; do sleep 0.1; done"
wait "$CLIENT"
set -e
grep -q "read failed: Input/output error" client.out ||
    fail "the client reading while golden died: $(cat client.out)"
alive "$PLUGIN_PID" || fail "nbdkit qed died with the golden server"
start_nbdkit "$GSOCK" file golden.raw
GOLDEN_PID=$NBDKIT_PID
on_exit "kill -9 $GOLDEN_PID 2>/dev/null"
NBDKIT_PID=$PLUGIN_PID
qemu-img compare -q -f raw -F raw "$URI" expect.raw ||
    fail "a new client after golden came back reads otherwise"
stop_nbdkit
qemu-img check -q ov.qed || fail "the overlay is not clean after the golden server died"

# The filter over an image that is itself on an NBD server, whose backing
# file is on another: qed-backing= takes the golden image's NBD address.
OSOCK=$T/ov-raw.sock
start_nbdkit "$OSOCK" -r file ov.qed
OV_PID=$NBDKIT_PID
start_nbdkit "$SOCK" --filter="$FILTER" nbd socket="$OSOCK" \
    qed-backing="nbd+unix:///?socket=$GSOCK" qed-backing-format=raw qed-readonly=true
qemu-img compare -q -f raw -F raw "$URI" expect.raw ||
    fail "the filter over an export with qed-backing=NBD-URI reads otherwise"
stop_nbdkit
kill "$OV_PID"
