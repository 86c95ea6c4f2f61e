#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit qed serves an image its user cannot write as a read-only export:
# with -r (or readonly=true), and without, as nbdkit's file plugin serves
# such a file; the filter over the file plugin likewise. As root, nbdkit runs as
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

# Without -r: served read-only, as nbdkit's file plugin serves such a file.
start_nbdkit "$SOCK" "$NBDKIT_QED_PLUGIN" "$T/img/disk.qed"
set +e
nbdinfo --can write "$URI"
can_write=$?
set -e
[ "$can_write" -eq 2 ] || fail "the plugin: nbdinfo --can write exited $can_write, expected 2"
qemu-io -f raw -r -c 'read -q -P 0x5a 0 128k' "$URI" >read.txt 2>&1 ||
    fail "reading without -r failed: $(cat read.txt)"
grep -q failed read.txt && fail "reading without -r failed: $(cat read.txt)"
if qemu-io -f raw -c 'write -q 0 4k' "$URI" >write.txt 2>&1 &&
    ! grep -q "failed" write.txt; then
    fail "a write to an image nbdkit cannot write succeeded"
fi
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
