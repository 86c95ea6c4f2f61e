#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img create behaves as qemu-img create -f qed: for a matrix of sizes,
# cluster sizes, table sizes and backing files it writes the same bytes with
# the same host allocation, prints the same "Formatting" line, and fails with
# the same messages and exit status; its images pass qemu-img check.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img cmp od dd

cd "$T"
mkdir q o            # qemu-img works in q/, qed-img in o/, on the same names

# Base images, the same in both directories (and one for absolute names).
qemu-img create -q -f raw base.raw 3M
for d in q o; do
    mkdir -p "$d/sub"
    qemu-img create -q -f raw "$d/base.raw" 2M
    qemu-img create -q -f qed "$d/base.qed" 4M
    qemu-img create -q -f qed "$d/sub/base.qed" 6M
done

# Runs `create ARGS` with both tools and compares everything they do.
# IMG is the image that ARGS name (relative to q/ and o/), or - when none is
# written; CHECK=1 runs qemu-img check on the image that qed-img wrote.
compare_create() {
    img=$1
    check=$2
    shift 2
    compare_runs q o create "$@"
    if [ "$qemu_status" -eq 0 ] && [ "$img" != - ]; then
        cmp "q/$img" "o/$img" >&2 || mismatch "create $*: the images differ"
        # The same ranges of the files are allocated (st_blocks also counts
        # the file system's extent blocks, which depend on its free space).
        qemu-img map -f raw --output=json "q/$img" >q.map
        qemu-img map -f raw --output=json "o/$img" >o.map
        diff -u q.map o.map >&2 || mismatch "create $*: the images are allocated differently"
        if [ "$check" -eq 1 ]; then
            qemu-img check -q "o/$img" >&2 ||
                mismatch "create $*: qemu-img check failed on qed-img's image"
        fi
    fi
    [ "$img" = - ] || rm -f "q/$img" "o/$img"
}

log2() {
    n=$1
    b=0
    while [ "$n" -gt 1 ]; do
        n=$((n / 2))
        b=$((b + 1))
    done
    echo "$b"
}

# --- geometry x size ---------------------------------------------------------
# QEMU computes the largest image as 2^(3*cluster_bits + 2*table_bits - 6) in
# 64 bits, which wraps to 0 from 2^64 on (all 64 MiB geometries): qemu-img then
# refuses every size but 0. Only size 0 is compared there; what qed-img does
# instead is tested below.
n=0
for cluster in 4096 65536 1048576 67108864; do
    for table in 1 2 4 16; do
        # 64 MiB clusters with 16-cluster tables write a 1 GiB L1 table: the one
        # large case, with size 0 (the only size qemu-img accepts for it).
        cb=$(log2 "$cluster")
        tb=$(log2 "$table")
        bits=$((3 * cb + 2 * tb - 6))
        check=0
        [ "$table" -ge 2 ] && check=1   # QEMU cannot open table_size=1 images
        sizes="0"
        if [ "$bits" -lt 63 ]; then
            max=$((1 << bits))
            sizes="0 1000 1M 5T $max $((max + 512))"
        fi
        for size in $sizes; do
            n=$((n + 1))
            compare_create "g$n.qed" "$check" -f qed \
                -o "cluster_size=$cluster,table_size=$table" "g$n.qed" "$size"
        done
    done
done
# The default geometry, and options given every other way.
compare_create d1.qed 1 -f qed d1.qed 1M
compare_create d2.qed 1 -f qed -o size=1.5M d2.qed
compare_create d3.qed 1 -f qed -o cluster_size=4k -o table_size=2 d3.qed 0x100000
compare_create d4.qed 1 -f qed -o cluster_size=4k,cluster_size=8k,table_size=0x2 d4.qed 1M
compare_create d5.qed 1 -f qed -o size=1M -o size=3M d5.qed
compare_create d6.qed 1 d6.qed 1M -o cluster_size=16k -f qed -q
compare_create d7.qed 1 -f qed -o extent_size_hint=1M,preallocation=falloc,nocow=off d7.qed 1M
compare_create d8.qed 1 -f qed -o preallocation=full d8.qed 512B
compare_create d9.qed 1 -f qed d9.qed " 1M"

# --- backing files -------------------------------------------------------------
# (qemu-img check opens the backing file: not run where it is missing)
for geometry in "cluster_size=65536" "cluster_size=4096,table_size=2"; do
    compare_create b1.qed 1 -f qed -o "$geometry" -b base.raw -F raw b1.qed
    compare_create b2.qed 1 -f qed -o "$geometry" -b base.raw -F raw b2.qed 5M
    compare_create b3.qed 1 -f qed -o "$geometry" -b base.qed -F qed b3.qed
    compare_create b4.qed 1 -f qed -o "$geometry" -b "$T/base.raw" -F raw b4.qed
    compare_create sub/b5.qed 1 -f qed -o "$geometry" -b base.qed -F qed sub/b5.qed
    compare_create sub/b6.qed 1 -f qed -o "$geometry" -b ../base.raw -F raw sub/b6.qed
    compare_create sub/b7.qed 1 -f qed -o "$geometry" -b "$T/base.raw" -F raw sub/b7.qed 1M
    compare_create b8.qed 0 -f qed -o "$geometry" -u -b missing.qed -F qed b8.qed 1M
    compare_create b9.qed 1 -f qed -o "$geometry,backing_file=base.raw,backing_fmt=raw" b9.qed
    compare_create b10.qed 1 -f qed -o "$geometry" -F raw b10.qed 1M
    compare_create b11.qed 1 -f qed -o "$geometry" -b base.raw -F raw \
        -o backing_file=other.raw b11.qed 1M
    compare_create b12.qed 1 -f qed -o "$geometry,backing_fmt=qed" -F raw -b base.raw b12.qed
    compare_create b13.qed 0 -f qed -o "$geometry,backing_file=a,,b.raw,backing_fmt=raw" \
        -u b13.qed 1M
    compare_create b14.qed 1 -f qed -o "$geometry" -b ./base.qed -F qed b14.qed 1000
    compare_create b15.qed 0 -f qed -o "$geometry" -u -b base.raw -F qcow2 b15.qed 1M
done
# The longest name that fits in a 4 KiB header cluster (4096 - 64 bytes).
long=$(printf '%04032d' 0)
compare_create l1.qed 0 -f qed -o cluster_size=4k,table_size=2 -u -b "$long" -F raw l1.qed 1M

# --- errors: same message, same status ------------------------------------------
compare_create e.qed 0 -f qed e.qed
compare_create e.qed 0 -f qed
compare_create e.qed 0 -f qed -o cluster_size=3k e.qed 1M
compare_create e.qed 0 -f qed -o cluster_size=128M e.qed 1M
compare_create e.qed 0 -f qed -o cluster_size=0 e.qed 1M
compare_create e.qed 0 -f qed -o table_size=3 e.qed 1M
compare_create e.qed 0 -f qed -o table_size=32 e.qed 1M
compare_create e.qed 0 -f qed -o table_size=0 e.qed 1M
compare_create e.qed 0 -f qed -o table_size=2k e.qed 1M
compare_create e.qed 0 -f qed -o table_size=2.0 e.qed 1M
compare_create e.qed 0 -f qed e.qed 100T
compare_create e.qed 0 -f qed -o size=10E e.qed
compare_create e.qed 0 -f qed -o size=17E e.qed
compare_create e.qed 0 -f qed -o size=,cluster_size=4k e.qed
compare_create e.qed 0 -f qed -o size=1M,,cluster_size=4k e.qed
compare_create e.qed 0 -f qed e.qed 12x
compare_create e.qed 0 -f qed e.qed 1.5
compare_create e.qed 0 -f qed e.qed 9E
compare_create e.qed 0 -f qed e.qed 1M extra
compare_create e.qed 0 -f qed -o size=1M e.qed 2M
compare_create e.qed 0 -f qed -o foo=1 e.qed 1M
compare_create e.qed 0 -f qed -o =5 e.qed 1M
compare_create e.qed 0 -f qed -o cluster_size=abc e.qed 1M
compare_create e.qed 0 -f qed -o cluster_size e.qed 1M
compare_create e.qed 0 -f qed -o nocow e.qed 1M
compare_create e.qed 0 -f qed -o nocow=maybe e.qed 1M
compare_create e.qed 0 -f qed -o preallocation=foo e.qed 1M
compare_create e.qed 0 -f qed -o extent_size_hint=5G e.qed 1M
compare_create e.qed 0 -f qed -o ,cluster_size=4k e.qed 1M
compare_create e.qed 0 -f qed -o cluster_size=4k, e.qed 1M
compare_create e.qed 0 -f qed -b missing.qed -F qed e.qed
compare_create e.qed 0 -f qed -b missing.qed -F qed e.qed 1M
compare_create e.qed 0 -f qed -b missing.qed -u e.qed 1M
compare_create e.qed 0 -f qed -b base.raw e.qed
compare_create e.qed 0 -f qed -o backing_file=base.raw e.qed
compare_create e.qed 0 -f qed -b base.raw -F raw -u e.qed
compare_create e.qed 0 -f qed -b e.qed -F qed e.qed 1M
compare_create e.qed 0 -f qed -b "" -F qed e.qed 1M
compare_create e.qed 0 -f foo e.qed 1M
compare_create e.qed 0 -f raw -o cluster_size=4k e.raw 1M
compare_create e.qed 0 -f raw -b base.raw -F raw e.raw 1M
compare_create e.qed 0 -f
compare_create e.qed 0 -f qed -x e.qed 1M
compare_create e.qed 0 -f qed -qx e.qed 1M
# -o help, with and without a file name (the file's options are listed then)
compare_create - 0 -f qed -o help
compare_create - 0 -f qed -o help e.qed
compare_create - 0 -f qed -o cluster_size=4k,? e.qed
compare_create - 0 -f qed -q -o help
compare_create - 0 -f raw -o help
compare_create - 0 -f raw -o help e.raw
compare_create - 0 -f foo -o help

# --- raw images ------------------------------------------------------------------
for size in 0 100 1000 4096 5000 1M; do
    compare_create r.raw 0 -f raw r.raw "$size"
done
compare_create r.raw 0 -f raw -o preallocation=falloc r.raw 1000
compare_create r.raw 0 -f raw -o preallocation=full r.raw 64k
compare_create r.raw 0 -f raw -o size=1M r.raw

# --- where qed-img intentionally differs (docs/qed-img.md) -----------------------

# Largest geometries: qemu-img's size limit wraps to 0, qed-img takes the real
# limit (capped below 2^63). The image must be qemu-img's size-0 image with
# only image_size (offset 48, little-endian) changed.
put_u64() { # FILE OFFSET VALUE
    v=$3
    i=0
    while [ "$i" -lt 8 ]; do
        # shellcheck disable=SC2059 # the format is the byte's octal escape
        printf "\\$(printf %03o $((v & 255)))"
        v=$((v >> 8))
        i=$((i + 1))
    done | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
# SIZE:BYTES pairs: the size argument and the image_size it must store.
for pair in 1000:1024 1M:1048576 5T:5497558138880 9223372036854775296:9223372036854775296; do
    size=${pair%%:*}
    bytes=${pair#*:}
    cases=$((cases + 1))
    qemu-img create -q -f qed -o cluster_size=64M,table_size=1 want.qed 0
    put_u64 want.qed 48 "$bytes"
    "$QED_IMG" create -q -f qed -o cluster_size=64M,table_size=1 got.qed "$size" ||
        mismatch "qed-img refused a ${size} image with 64 MiB clusters"
    cmp want.qed got.qed || mismatch "64 MiB clusters, size $size: wrong bytes"
    rm -f want.qed got.qed
done
# Runs qed-img (in o/) where it must refuse: exit status 1 and a message
# containing WANT.
expect_refusal() {
    want=$1
    shift
    cases=$((cases + 1))
    set +e
    (cd o && "$QED_IMG" "$@" >/dev/null 2>../err.txt)
    status=$?
    set -e
    [ "$status" -eq 1 ] || mismatch "$*: exit status $status, expected 1"
    grep -qF "$want" err.txt || mismatch "$*: no '$want' in: $(cat err.txt)"
}

# ...and above that limit it says which limit.
expect_refusal "less than 9223372036854775296 bytes" \
    create -q -f qed -o cluster_size=64M big.qed 9223372036854775807

# Cluster and table sizes beyond 32 bits: qemu-img truncates them silently.
expect_refusal "QED cluster size must be within range" \
    create -q -f qed -o cluster_size=4294971392 big.qed 1M
expect_refusal "QED table size must be within range" \
    create -q -f qed -o table_size=4294967298 big.qed 1M

# A backing file name longer than the header cluster: qemu-img writes it over
# the L1 table (an image that QEMU then refuses to open); qed-img refuses.
expect_refusal "too long" \
    create -q -f qed -o cluster_size=4k -u -b "$(printf '%04033d' 0)" -F raw long.qed 1M

# The backing file must be of the format that -F names (the library's open
# errors name the file, qemu-img's do not here).
expect_refusal "base.raw" create -f qed -b base.raw -F qed e.qed 1M
expect_refusal "Unknown driver 'foo'" create -f qed -b base.raw -F foo e.qed 1M

report_mismatches
