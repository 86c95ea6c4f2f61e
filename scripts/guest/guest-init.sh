#!/bin/busybox sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=dash
# /init of the guest-boot initramfs (make-initramfs.sh copies it in): formats
# the virtio disk as ext4, writes files of varied sizes with a SHA256SUMS
# manifest, remounts, verifies them, and prints one line that the host
# looks for:
#   GUEST-RESULT: OK <n> files verified
#   GUEST-RESULT: FAIL <what failed>
# then powers the machine off. Runs under busybox sh as PID 1.

NFILES=300
DISK=/dev/vda
MNT=/mnt

/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t devtmpfs dev /dev
# The initramfs has no /dev/console node, so PID 1 started without stdio.
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sys /sys

step() {
    read -r up _ </proc/uptime
    echo "guest: [$up s] $*"
}

result() {
    echo "GUEST-RESULT: $*"
    sync
    poweroff -f
    # Not reached; if poweroff fails, exiting PID 1 panics and panic=-1
    # with QEMU's -no-reboot ends the VM anyway.
    exit 1
}

step "loading modules"
while read -r m; do
    insmod "/lib/modules/$m.ko" || result "FAIL insmod $m"
done </modules.load

i=0
while [ ! -b "$DISK" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || result "FAIL no disk $DISK after 10 s"
    sleep 0.1
done
step "$DISK has $(cat /sys/block/vda/size) sectors; mkfs.ext4"
/sbin/mke2fs -t ext4 -q -F "$DISK" || result "FAIL mkfs.ext4 $DISK"
mount -t ext4 "$DISK" "$MNT" || result "FAIL mount $DISK"

# Sizes mix tiny and odd-sized files, whole 4 KiB blocks, files spanning
# several 64 KiB QED clusters, and one of several MiB.
step "writing $NFILES files"
i=0
while [ "$i" -lt "$NFILES" ]; do
    case $((i % 10)) in
    0) size=$((65536 + (i * 7919) % 262144)) ;;
    1 | 2) size=$((4096 * (1 + i % 4))) ;;
    *) size=$((1 + (i * 40503) % 16384)) ;;
    esac
    [ "$i" -eq 7 ] && size=$((4 * 1024 * 1024 + 123))
    dir=$MNT/data/d$((i % 16))
    mkdir -p "$dir" || result "FAIL mkdir $dir"
    head -c "$size" /dev/urandom >"$dir/f$i" || result "FAIL writing $dir/f$i"
    i=$((i + 1))
done
sync

# Now that the first contents are on the disk, rewrite part of every third
# file in place (writes to clusters the image has already allocated) and
# extend every fifth (allocating again next to allocated data).
step "rewriting and extending files"
i=0
while [ "$i" -lt "$NFILES" ]; do
    f=$MNT/data/d$((i % 16))/f$i
    if [ $((i % 3)) -eq 0 ]; then
        dd if=/dev/urandom of="$f" bs=1024 seek=1 count=$((1 + i % 8)) conv=notrunc \
            2>/dev/null || result "FAIL rewriting $f"
    fi
    if [ $((i % 5)) -eq 0 ]; then
        head -c $((1000 + i * 97)) /dev/urandom >>"$f" || result "FAIL extending $f"
    fi
    i=$((i + 1))
done
(cd "$MNT/data" && find . -type f | sort | xargs sha256sum >/tmp/SHA256SUMS) ||
    result "FAIL computing checksums"
cp /tmp/SHA256SUMS "$MNT/data/SHA256SUMS" || result "FAIL writing SHA256SUMS"
sync
umount "$MNT" || result "FAIL umount $MNT"
echo 3 >/proc/sys/vm/drop_caches

step "remounting and verifying"
mount -t ext4 "$DISK" "$MNT" || result "FAIL remount $DISK"
(cd "$MNT/data" && sha256sum -c SHA256SUMS) >/tmp/verify 2>&1
n=$(grep -c ': OK$' /tmp/verify)
bad=$(grep -v ': OK$' /tmp/verify | head -n 5 | tr '\n' ' ')
umount "$MNT" || result "FAIL final umount $MNT"
[ -z "$bad" ] || result "FAIL checksums: $bad"
[ "$n" -eq "$NFILES" ] || result "FAIL $n of $NFILES files verified"
step "done"
result "OK $n files verified"
