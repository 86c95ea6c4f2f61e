#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# nbdkit --filter=qed over the file plugin: the same driver on storage that
# another plugin serves. The image file is a container of fixed size (here
# padded with room to grow); writes through the filter land in it, QEMU reads
# them back, and a backing file must be named with qed-backing=PATH.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy
FILTER=$(dirname "$NBDKIT_QED_PLUGIN")/nbdkit-qed-filter.so
[ -f "$FILTER" ] || fail "$FILTER was not built"

cd "$T"
"$QED_IMG" create -q -f qed -o cluster_size=65536 disk.qed 32M
truncate -s 24M disk.qed           # room for clusters to be allocated in
qemu-img create -q -f raw ref.raw 32M

cat >ops.cmds <<'CMDS'
write -q -P 0x11 0 64k
write -q -P 0x22 100000 300000
write -q -z 1M 128k
write -q -P 0x33 31M 1M
write -q -P 0x44 2M 4k
discard -q 2M 64k
CMDS
start_nbdkit "$SOCK" --filter="$FILTER" file disk.qed
qemu-io -f raw "$URI" <ops.cmds >out.txt
grep -q failed out.txt && fail "a request failed: $(cat out.txt)"
stop_nbdkit
qemu-io -f raw ref.raw <ops.cmds >/dev/null

# The padding past the image reads as leaked clusters, nothing worse.
set +e
qemu-img check -q disk.qed
status=$?
set -e
[ "$status" -eq 0 ] || [ "$status" -eq 3 ] || fail "qemu-img check exited $status"
qemu-img compare -q -f qed -F raw disk.qed ref.raw || fail "image differs from reference"

# A backing file needs qed-backing=PATH in filter mode.
qemu-img create -q -f raw base.raw 4M
qemu-io -f raw -c 'write -q -P 0x5a 0 4M' base.raw
"$QED_IMG" create -q -f qed -b base.raw -F raw top.qed 4M
truncate -s 8M top.qed
set +e
run_nbdkit -f -U "$T/never.sock" --filter="$FILTER" file top.qed >refusal.txt 2>&1
status=$?
set -e
[ "$status" -ne 0 ] || fail "the filter served an image without its backing file"
grep -q "qed-backing=PATH" refusal.txt || fail "unclear refusal: $(cat refusal.txt)"

start_nbdkit "$SOCK" --filter="$FILTER" file top.qed qed-backing=base.raw
qemu-io -f raw -c 'write -q -P 0x77 1000 1000' -c 'read -q -P 0x5a 0 1000' \
    -c 'read -q -P 0x77 1000 1000' -c 'read -q -P 0x5a 2000 1M' "$URI" >out2.txt
grep -q failed out2.txt && fail "backing reads failed: $(cat out2.txt)"
stop_nbdkit
qemu-io -f qed -r -c 'read -q -P 0x77 1000 1000' -c 'read -q -P 0x5a 2000 1M' top.qed \
    >out3.txt
grep -q failed out3.txt && fail "QEMU reads differ: $(cat out3.txt)"

# The file named by qed-backing= may have a backing file of its own, inside
# its directory; one that names a host file outside it is refused.
mkdir golden
qemu-img create -q -f raw golden/base.raw 4M
qemu-io -f raw -c 'write -q -P 0x66 0 4M' golden/base.raw
qemu-img create -q -f qed -b base.raw -F raw golden/mid.qed 4M
qemu-img create -q -f qed -u -b /etc/passwd -F raw golden/evil.qed 4M
"$QED_IMG" create -q -f qed -u -b golden/mid.qed -F qed over.qed 4M
truncate -s 8M over.qed
start_nbdkit "$SOCK" --filter="$FILTER" file over.qed qed-backing=golden/mid.qed
qemu-io -f raw -r -c 'read -q -P 0x66 0 4M' "$URI" >out4.txt
grep -q failed out4.txt && fail "reads through a chain inside the directory: $(cat out4.txt)"
stop_nbdkit
set +e
run_nbdkit -U - --filter="$FILTER" file over.qed qed-backing=golden/evil.qed \
    qed-readonly=true --run 'nbdcopy "$uri" -' >evil.txt 2>&1
status=$?
set -e
[ "$status" -ne 0 ] || fail "the filter served /etc/passwd through qed-backing's backing file"
grep -q "/etc/passwd.*outside" evil.txt || fail "unclear refusal: $(cat evil.txt)"
exit 0
