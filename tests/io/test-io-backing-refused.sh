#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Backing files that qed-io and qed-img refuse, each with an error naming it,
# at once and without hanging (every run is under `timeout`; qemu-io itself
# hangs forever on a FIFO): a qcow2 image (QEMU reads it as qcow2; reading
# it as raw would return its header), a FIFO, a socket, a character device,
# a directory, and network names, which are never tried as local paths.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io python3 timeout

cd "$T"

# refused WANT IMAGE: qed-io fails to open IMAGE within the time limit
# with "Could not open backing file: WANT", and qed-img info --backing-chain
# (which opens each image of the chain itself) with WANT.
refused() {
    want=$1
    image=$2
    set +e
    timeout 20 "$QED_IO" -r -c 'read 0 512' "$image" >out.txt 2>err.txt
    status=$?
    set -e
    [ "$status" -ne 124 ] || fail "qed-io hangs on $image"
    [ "$status" -eq 1 ] || fail "qed-io on $image exited $status: $(cat err.txt)"
    grep -qF -- "Could not open backing file: $want" err.txt ||
        fail "qed-io on $image: $(cat err.txt), expected '$want'"
    set +e
    timeout 20 "$QED_IMG" info --backing-chain "$image" >out.txt 2>err.txt
    status=$?
    set -e
    [ "$status" -ne 124 ] || fail "qed-img info hangs on $image"
    [ "$status" -eq 1 ] || fail "qed-img info on $image exited $status"
    grep -qF -- "$want" err.txt || fail "qed-img info on $image: $(cat err.txt)"
}

# over NAME BACKING: a QED image NAME whose backing file is BACKING (raw).
over() {
    qemu-img create -q -f qed -u -b "$2" -F raw "$1" 1M
}

# A qcow2 backing file: QEMU reads its data, we refuse it by format.
qemu-img create -q -f qcow2 base.qcow2 1M
qemu-io -f qcow2 -c 'write -q -P 0x61 0 64k' base.qcow2
qemu-img create -q -f qed -b base.qcow2 -F qcow2 over-qcow2.qed 1M
qemu-io -r -c 'read -q -P 0x61 0 64k' over-qcow2.qed >out.txt
! grep -q failed out.txt || fail "qemu-io does not read the qcow2 data: $(cat out.txt)"
refused "Could not open 'base.qcow2': Image format 'qcow2' is not supported" over-qcow2.qed

mkfifo fifo
over over-fifo.qed fifo
refused "Could not open 'fifo': it is a FIFO, not a regular file" over-fifo.qed
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('sock')"
over over-sock.qed sock
refused "Could not open 'sock': it is a socket, not a regular file" over-sock.qed
over over-null.qed /dev/null
refused "Could not open '/dev/null': it is a character device, not a regular file" over-null.qed
mkdir dir
over over-dir.qed dir
refused "Could not open 'dir': Is a directory" over-dir.qed

# Network names: never read as the local file of that relative path, even
# where one exists. qed-io follows NBD names, as qemu-io does (here to a
# socket that does not exist); other network protocols are refused by name.
for name in "nbd+unix:///disk?socket=$T/missing.sock" nbd:unix:$T/missing.sock \
    http://localhost/disk https://localhost/disk ssh://localhost/disk; do
    case $name in
    nbd*) ;;
    *)
        mkdir -p "$(dirname "$name")"
        : >"$name"
        ;;
    esac
    over over-net.qed "$name"
    refused "Could not open '$name': " over-net.qed
    case $name in
    nbd*) why="No such file or directory" ;;
    *) why="network backing files over protocol '${name%%:*}' are not supported" ;;
    esac
    "$QED_IO" -r -c 'read 0 512' over-net.qed 2>&1 | grep -qF "$why" ||
        fail "qed-io over $name: no reason given"
done

# The image itself: a FIFO is refused, not waited on (qemu-img info hangs).
refused_top() {
    set +e
    timeout 20 "$@" >out.txt 2>err.txt
    status=$?
    set -e
    [ "$status" -eq 1 ] || fail "'$*' exited $status: $(cat err.txt)"
    # qemu-img words it "Could not open 'fifo': ...", qemu-io "can't open device fifo: ..."
    grep -qE "(Could not open 'fifo'|can't open device fifo): it is a FIFO, not a regular file or block device" err.txt ||
        fail "'$*': $(cat err.txt)"
}
refused_top "$QED_IO" -c 'read 0 512' fifo
refused_top "$QED_IMG" info fifo
refused_top "$QED_IMG" create -f qed fifo 1M
refused_top "$QED_IMG" create -f qed -b fifo -F raw new.qed 1M
[ ! -e new.qed ] || fail "qed-img create wrote new.qed over a FIFO backing file"
echo "OK"
