#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit --filter=qed reports every startup error and never hangs: nbdkit
# 1.32 gives a filter the plugin below first in .after_fork, so with -f the
# error is printed and nbdkit exits nonzero before it accepts a connection;
# with --run the command's client is refused at once instead of waiting for
# a server that is gone (also when it connected before the error); in the
# background the server goes away and its socket refuses clients.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdinfo timeout
[ -f "$FILTER" ] || fail "$FILTER was not built"

cd "$T"
qemu-img create -q -f raw junk.img 1M
"$QED_IMG" create -q -f qed disk.qed 64M
# The last cluster of the file is the data written last.
qemu-io -f qed -c 'write -q -P 0x11 0 64k' -c 'write -q -P 0x22 32M 64k' disk.qed

# -f over the file plugin: not QED, missing, cut short.
nbdkit_refuses "Image not in QED format" --filter="$FILTER" file junk.img
nbdkit_refuses "missing.img" --filter="$FILTER" file missing.img
cp disk.qed short.qed
truncate -s 128k short.qed             # the L1 table does not fit
nbdkit_refuses "QED table offset is invalid" --filter="$FILTER" file short.qed
# The header and tables fit, the last data cluster does not.
size=$(stat -c %s disk.qed)
cp disk.qed cut.qed
truncate -s $((size - 65536)) cut.qed
cp cut.qed cut.orig
nbdkit_refuses "the plugin's disk ($((size - 65536)) bytes) does not hold the image" \
    --filter="$FILTER" file cut.qed
cmp cut.qed cut.orig || fail "the refused image was changed"

# -f over the memory plugin: an empty disk is no QED image.
nbdkit_refuses "Image not in QED format" --filter="$FILTER" memory 1M
nbdkit_refuses "qed-backing-format=vmdk: expected raw or qed" --filter="$FILTER" \
    file disk.qed qed-backing-format=vmdk

# run_refused TEXT NBDKIT-ARGS...: with --run 'nbdinfo', nbdkit must print
# TEXT and exit nonzero, and the client must be turned away, within 20 s.
# nbdkit's status is the command's when the command ends first (the failed
# server process is then killed, its status unseen), so the command lingers
# after its client was refused, for the server to exit first.
run_refused() {
    _text=$1
    shift
    # With the ASan runtime preloaded, the failed server's exit can deadlock
    # (stop_nbdkit in functions.sh) and --run waits for it: shorter there.
    _limit=20
    [ -z "${NBDKIT_PRELOAD:-}" ] || _limit=5
    set +e
    # shellcheck disable=SC2086
    timeout "$_limit" \
        env ${NBDKIT_PRELOAD:+LD_PRELOAD=$NBDKIT_PRELOAD ASAN_OPTIONS=detect_leaks=0} \
        nbdkit -U - "$@" --run 'nbdinfo "$uri"; echo "client exited $?"; sleep 2' \
        >run.txt 2>&1
    _status=$?
    set -e
    [ "$_status" -ne 0 ] || fail "nbdkit --run exited 0 with $*: $(cat run.txt)"
    grep -q -- "$_text" run.txt || fail "no '$_text' with --run $*: $(cat run.txt)"
    grep -q "client exited [1-9]" run.txt || fail "the client hung with $*: $(cat run.txt)"
    grep -q -E "Connection refused|disconnected" run.txt ||
        fail "the client was not refused with $*: $(cat run.txt)"
    if [ "$_status" -eq 124 ] && [ -z "${NBDKIT_PRELOAD:-}" ]; then
        fail "nbdkit --run hung with $*: $(cat run.txt)"
    fi
}
run_refused "Image not in QED format" --filter="$FILTER" memory 1M
run_refused "Image not in QED format" --filter="$FILTER" file junk.img
run_refused "does not hold the image" --filter="$FILTER" file cut.qed

# A client that connected before the filter failed: the plugin below takes
# a second to open, and nbdinfo is queued on the socket meanwhile.
cat >slow.sh <<'SH'
#!/bin/sh
case "$1" in
    open) sleep 1; echo handle ;;
    get_size) echo 1048576 ;;
    pread) dd if=/dev/zero count="$3" iflag=count_bytes 2>/dev/null ;;
    *) exit 2 ;;
esac
SH
chmod +x slow.sh
if nbdkit sh --version >/dev/null 2>&1; then
    run_refused "Could not open 'the plugin's disk'" --filter="$FILTER" sh ./slow.sh
fi

# In the background: nbdkit's first process has already exited 0 when the
# filter finds the error (it goes to syslog); the server is gone, and a
# client is refused, not left waiting.
set +e
run_nbdkit -U "$T/bg.sock" -P "$T/bg.pid" --filter="$FILTER" memory 1M >bg.txt 2>&1
set -e
# The ASan preload's exit deadlock (functions.sh) would keep it around.
limit=200
[ -z "${NBDKIT_PRELOAD:-}" ] || limit=30
i=0
while [ ! -s bg.pid ] || alive "$(cat bg.pid)"; do
    i=$((i + 1))
    if [ "$i" -ge "$limit" ]; then
        [ -n "${NBDKIT_PRELOAD:-}" ] || fail "the failed server is still running"
        kill -9 "$(cat bg.pid)"
        break
    fi
    sleep 0.1
done
if timeout 20 nbdinfo "nbd+unix:///?socket=$T/bg.sock" >bg-client.txt 2>&1; then
    fail "a client was served by the failed server"
fi
grep -q "Connection refused" bg-client.txt || fail "no refusal: $(cat bg-client.txt)"
