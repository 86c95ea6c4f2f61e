#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-io prints what qemu-io prints: the same command lines, run by both tools
# on copies of the same QED and raw images, give the same stdout, stderr and
# exit status once timings are masked as qemu-iotests mask them.
#
# Where QEMU's qed driver makes a different (legal) choice than libqed, the
# cases stay off it: QEMU turns unaligned write -z into data and keeps
# aligned ones as zero clusters even without a backing file (libqed leaves
# such clusters unallocated, which `map` shows), and QEMU's discard on QED
# does nothing (libqed's reads zeros). So no QED case reads a discarded range
# or maps a zeroed one without a backing file.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/io/io-common.sh"
requires qemu-img qemu-io

P=$T/pristine
mkdir "$P"
qemu-img create -q -f qed "$P/a.qed" 2M
qemu-img create -q -f qed -o cluster_size=4k "$P/c4k.qed" 2M
qemu-img create -q -f raw "$P/a.raw" 2M
qemu-img create -q -f raw "$P/base.raw" 1M
qemu-io -f raw -c 'write -q -P 0x41 0 1M' "$P/base.raw"
qemu-img convert -O qed "$P/base.raw" "$P/base.qed"
(cd "$P" && qemu-img create -q -f qed -b base.raw -F raw ov-raw.qed 2M)
(cd "$P" && qemu-img create -q -f qed -b base.qed -F qed ov-qed.qed 2M)
head -c 1000 /dev/zero | tr '\0' 'Q' >"$P/odd.raw"

for img in "qed a.qed" "qed c4k.qed" "raw a.raw"; do
    # shellcheck disable=SC2086 # split "format file" into two words
    set -- $img
    fmt=$1
    file=$2
    tag=$(echo "$file" | tr . -)

    io_compare "rw-$tag" -f "$fmt" "$file" <<'EOF'
write -P 0x11 0 64k
write -P 0x22 65000 1000
w 1M 3
read -P 0x11 0 64k
read -P 0x11 0 65001
read -P 0x22 65000 1000
read -P 0x22 -s 0 -l 464 64k 1000
read -P 0 -s 464 64k 1000
read -v 64990 40
r -v 1M 5
readv -P 0x11 0 512 1k 3
readv -v 64k 7 9
readv -P 0x22 65000 500 500
writev -P 0x33 128k 1 512 4k
read -P 0x33 128k 4609
read -q -P 0x33 128k 4609
read -q -P 0x34 128k 4609
read -C 0 512
write -C -P 1 0 512
write -f -P 2 512 512
writev -f -q -P 3 1k 100 100
read -p -v 512 528
write -z 192k 64k
read -P 0 192k 64k
write -z 300000 7
read -v 299990 30
discard 1536k 64k
discard -q 1536k 1
d 1536k 0
read 0 0
write 0 0
length
l
info
flush
f
EOF

    io_compare "errors-$tag" -f "$fmt" "$file" <<'EOF'
read 2M 1
read 2097151 2
read 0 2M
read 0 2097153
write 2M 1
write -z 2097152 512
discard 2M 512
readv 2M 1
readv 1M 1M 1
writev 0 2M 1
read -P 256 0 1
read -P x 0 1
read -P -1 0 1
read -P 0x1x 0 1
write -P 0x100 0 1
read -1 5
read 0 5x
read 0 9E
read 0 16E
read 0 3G
read 0 1.5
read 1.5k 1
read 0x10 0x10
read -x 0 1
read 0 1 2
write -z -P 1 0 1
write -s /dev/null -P 1 0 1
write -u 0 1
write -n 0 1
write -b -z 0 512
write -f -c 0 512
write -f -b 0 512
write -c 1 512
write -c 0 511
write -c 2M 512
write -c 0 64k
write -b 0 512
write 0 3G
read -b 0 512
read -b 1 512
read -b 0 1
read -s 5 0 512
read -l 5 0 512
read -P 1 -s 600 0 512
read -P 1 -s 5 -l 600 0 512
read -P 1 -l x 0 512
bogus
read 0
flush extra
map x
length 1
help bogus
aio_write -z 0 1 2
aio_write -u 0 1
aio_read -i 0 1
aio_write -i 0 1
aio_read 0
readv 0 3G
readv 0 2000M 2000M
writev -P 5 0 2000M 2000M
writev -x 0 1
discard 0 3G
discard 0
discard -x 0 1
alloc 0 3x
alloc x
truncate -m bogus 4M
truncate x
sleep x
sleep -1
write -s /nonexistent-file 0 5
write -s /dev/null 0 5
EOF

    io_compare "aio-$tag" -f "$fmt" "$file" <<'EOF'
aio_write -P 0x44 4k 4k
aio_flush
aio_read -P 0x44 4k 4k
aio_flush
aio_read -P 0x45 4k 4k
aio_flush
aio_read -v 4k 16
aio_flush
aio_read -C 4k 512
aio_flush
aio_write -z 4k 512
aio_flush
aio_read -P 0 4k 512 512
aio_flush
aio_write 2M 1
aio_flush
aio_read 2M 1
aio_flush
aio_write -q -P 1 0 512
aio_write -q -P 2 512 256 256
aio_write -q -f -P 3 1024 512
aio_read -q -P 0x44 5k 1k
aio_flush
read -P 1 0 512
read -P 2 512 512
read -P 3 1024 512
aio_write -P 0x55 64k 4k
aio_flush
read -P 0x55 64k 4k
aio_write -z -P 7 64k 512
aio_flush
read -P 0 64k 512
EOF

    io_compare "readonly-$tag" -r -f "$fmt" "$file" <<'EOF'
write 0 1
writev 0 1
aio_write 0 1
discard 0 1
truncate 4M
read -P 0 0 512
length
flush
EOF

    for cache in none writethrough writeback directsync unsafe; do
        io_compare "cache-$cache-$tag" -t "$cache" -f "$fmt" "$file" <<'EOF'
write -P 0x66 4097 8191
read -P 0x66 4097 8191
read -P 0 0 4097
aio_write -P 0x67 100k 3
aio_flush
read -v 100k 4
flush
EOF
    done
    io_compare "nocache-misalign-$tag" -n -m -f "$fmt" "$file" <<'EOF'
write -P 0x68 511 513
read -P 0x68 511 513
readv -P 0x68 511 13 500
EOF

    # Concurrent requests sharing a 4 KiB block under O_DIRECT: a zero write
    # must not be undone by the read-modify-write of its neighbour.
    for _ in $(seq 1 30); do
        echo "write -q -P 0x61 0 4096"
        echo "aio_write -q -P 0xa5 3000 1000"
        echo "aio_write -q -z 1000 1000"
        echo "aio_flush"
        echo "read -q -P 0 1000 1000"
        echo "read -q -P 0xa5 3000 1000"
    done >"$T/block-race.cmds"
    io_compare "nocache-block-race-$tag" -t none -f "$fmt" "$file" <"$T/block-race.cmds"

    io_compare "grow-$tag" -f "$fmt" "$file" <<'EOF'
write -P 0x77 2096640 512
truncate 3M
length
read -P 0x77 2096640 512
read -P 0 2M 1M
write -P 0x78 3145216 512
read -P 0x78 3145216 512
read 3M 1
EOF

    IO_STDIN=1
    io_compare "stdin-$tag" -f "$fmt" "$file" <<'EOF'
write -P 0x12 0 1k

  read   -P 0x12    0 1k  
length
bogus
quit
read 0 1
EOF
    IO_STDIN=0
done

# With O_DIRECT, a small write into the last block of the file (here the
# data cluster allocated last) must keep the rest of that block.
io_compare "nocache-tail-a-qed" -t none -f qed a.qed <<'EOF'
write -P 1 0 1
write -P 0x92 64k 64k
write -P 0xc3 126976 1
read -P 0x92 126977 4095
read -P 0xc3 126976 1
EOF
io_compare "nocache-tail-c4k-qed" -t none -f qed c4k.qed <<'EOF'
write -P 1 8k 1
write -P 0x92 4k 4k
write -P 0xc3 7000 1
read -P 0x92 7001 1191
EOF
io_compare "nocache-tail-a-raw" -t none -f raw a.raw <<'EOF'
write -P 0x92 2093056 4096
write -P 0xc3 2093156 1
read -P 0x92 2093157 3995
length
EOF

# A raw file whose size is not a multiple of 512 reads as if rounded up.
io_compare "odd-size-raw" -f raw odd.raw <<'EOF'
length
read -v 992 32
read -P 0x51 0 1000
map
write -P 5 1020 4
read -v 992 32
length
read 1024 1
EOF

# An image named on the command line may also be opened by command.
io_compare "open-close" <<'EOF'
read 0 1
length
open -o driver=qed a.qed
open -o driver=raw a.raw
length
close
length
open -r -o driver=raw a.raw
write 0 1
read 0 1
c
open -t bogus -o driver=raw a.raw
open
o -t none -o driver=qed c4k.qed
info
q
length
EOF
io_compare "cache-bogus" -t bogus -f qed a.qed <<'EOF'
length
EOF
io_compare "help" <<'EOF'
help bogus
? bogus
EOF

# Backing files: reads fall through, map and alloc see only this layer.
for ov in ov-raw.qed ov-qed.qed; do
    tag=$(echo "$ov" | tr . -)
    io_compare "backing-$tag" -f qed "$ov" <<'EOF'
read -P 0x41 0 64k
read -P 0x41 1000000 48576
read -P 0 1M 1M
read -v 1048560 32
map
write -P 0x11 4k 4k
read -P 0x41 0 4k
read -P 0x11 4k 4k
read -P 0x41 8k 56k
write -z 64k 64k
read -P 0 64k 64k
write -P 0x12 1000k 100k
read -P 0x12 1000k 100k
read -P 0x41 896k 104k
read -P 0 1100k 52k
map
alloc 0 128k
a 64k 64k
alloc 4k
alloc 192k 64k
alloc 2M
alloc 1984k 128k
info
length
EOF
done

io_compare "map-qed" -f qed a.qed <<'EOF'
map
write -P 1 0 1
write -P 2 128k 64k
write -P 3 192k 1
write -P 4 2047k 1k
map
alloc 0
alloc 0 2M
alloc 64k 64k
alloc 1M 1M
EOF
io_compare "map-raw" -f raw a.raw <<'EOF'
map
write -P 1 0 1
map
alloc 1M 1M
EOF

[ -z "$IO_FAILED" ] || fail "qed-io's output differs from qemu-io's in:$IO_FAILED"
