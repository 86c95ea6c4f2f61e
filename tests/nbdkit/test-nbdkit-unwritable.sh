#!/bin/sh
# nbdkit qed serves an image its user cannot write: with -r (or
# readonly=true) as a read-only export; without, it still starts (the image
# is opened read-only), and a client that may write is refused with a log
# line saying why. The filter over the file plugin, which falls back to
# read-only on such a file, serves it read-only. As root, nbdkit runs as
# nobody on a 0444 file in a directory nobody can list or write.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-io nbdinfo sha256sum

if [ "$(id -u)" -eq 0 ]; then
    requires setpriv
    if ! id nobody >/dev/null 2>&1 || ! getent group nogroup >/dev/null; then
        echo "SKIP: no user nobody or group nogroup" >&2
        exit 77
    fi
    NBDKIT_AS="setpriv --reuid=nobody --regid=nogroup --clear-groups"
    chmod 0711 "$T"
fi

mkdir "$T/img" "$T/run"
cd "$T/img"
"$QED_IMG" create -q -f qed disk.qed 4M
qemu-io -f qed -c 'write -q -P 0x5a 0 128k' disk.qed
set_header_bits disk.qed 0x2 0x1    # a writable open would rewrite the header
chmod 0444 disk.qed
chmod 0711 "$T/img"                 # no listing, no new files
chmod 0777 "$T/run"                 # the socket
sum=$(sha256sum <disk.qed)
SOCK=$T/run/nbd.sock
URI="nbd+unix:///?socket=$SOCK"

for ro in "-r" "readonly=true"; do
    case $ro in
    -r) start_nbdkit "$SOCK" -r "$NBDKIT_QED_PLUGIN" "$T/img/disk.qed" ;;
    *) start_nbdkit "$SOCK" "$NBDKIT_QED_PLUGIN" "$T/img/disk.qed" "$ro" ;;
    esac
    qemu-io -f raw -r -c 'read -q -P 0x5a 0 128k' -c 'read -q -P 0 128k 64k' "$URI" \
        >read.txt 2>&1 || fail "reading with $ro failed: $(cat read.txt)"
    grep -q failed read.txt && fail "reading with $ro failed: $(cat read.txt)"
    stop_nbdkit
done

start_nbdkit "$SOCK" "$NBDKIT_QED_PLUGIN" "$T/img/disk.qed" 2>"$T/log.txt"
if qemu-io -f raw -c 'read -q -P 0x5a 0 4k' "$URI" >client.txt 2>&1; then
    fail "a writable client was served an image nbdkit cannot write"
fi
# The reason, naming the image, in the server's log.
grep -q "cannot serve the image writable.*disk.qed.*Permission denied" "$T/log.txt" ||
    fail "no clear refusal in the log: $(cat "$T/log.txt")"
# Refused, not stopped: the server still answers (and refuses again).
if qemu-io -f raw -c 'read -q 0 4k' "$URI" >client.txt 2>&1; then
    fail "the second writable client was served"
fi
kill -0 "$NBDKIT_PID" || fail "nbdkit exited after refusing a client"
stop_nbdkit

start_nbdkit "$SOCK" --filter="$FILTER" file "$T/img/disk.qed"
set +e
nbdinfo --can write "$URI"
can_write=$?
set -e
[ "$can_write" -eq 2 ] || fail "the filter: nbdinfo --can write exited $can_write, expected 2"
qemu-io -f raw -r -c 'read -q -P 0x5a 0 128k' "$URI" >read.txt 2>&1 ||
    fail "reading through the filter failed: $(cat read.txt)"
grep -q failed read.txt && fail "reading through the filter failed: $(cat read.txt)"
stop_nbdkit
[ "$(sha256sum <disk.qed)" = "$sum" ] || fail "the image changed"
