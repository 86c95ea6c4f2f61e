#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img map prints what qemu-img map prints (stdout and stderr byte for
# byte, exit status), human and JSON, on QED images with data, zero and
# unallocated clusters, through backing chains of QED and raw images
# (shorter and longer backing files, relative names in a subdirectory),
# with --start-offset and --max-length, and on the error paths.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"
mkdir sub
# A raw base with data, a hole and data that ends mid-cluster.
qemu-img create -f raw sub/base.raw 3M >/dev/null
qemu-io -f raw -c 'write -P 1 0 1M' -c 'write -P 2 2M 64k' -c 'write -P 5 2949120 1536' \
    sub/base.raw >/dev/null
# A QED middle layer over it, with data, zero clusters and a gap.
qemu-img create -f qed -b base.raw -F raw sub/mid.qed 4M >/dev/null
qemu-io -c 'write -P 3 512k 128k' -c 'write -z 2M 128k' -c 'write -P 4 3M 64k' \
    sub/mid.qed >/dev/null
# The top, 6 MiB: longer than everything under it.
qemu-img create -f qed -b mid.qed -F qed sub/top.qed 6M >/dev/null
qemu-io -c 'write -P 6 64k 64k' -c 'write -P 7 1M 192k' -c 'write -z 3M 64k' \
    -c 'write -P 8 5M 4k' sub/top.qed >/dev/null
# 4 KiB clusters, table_size 2 (an L2 table maps 2 MiB): runs that cross
# tables, data that is contiguous in the file across them.
qemu-img create -f qed -o cluster_size=4k,table_size=2 small.qed 5M >/dev/null
qemu-io -c 'write -P 9 1900k 400k' -c 'write -z 3M 8k' -c 'write -P 10 4M 4k' \
    -c 'write -P 11 4100k 4k' small.qed >/dev/null
# A plain image without a backing file, and an empty one.
qemu-img create -f qed plain.qed 1M >/dev/null
qemu-io -c 'write -P 12 0 64k' -c 'write -z 128k 64k' plain.qed >/dev/null
qemu-img create -f qed empty.qed 2M >/dev/null
# A raw file whose size is not a multiple of 512.
head -c 1000 /dev/urandom >odd.raw

for img in sub/top.qed sub/mid.qed small.qed plain.qed empty.qed; do
    for out in "" --output=human --output=json; do
        compare_runs . . map $out "$img"
        compare_runs . . map $out -f qed "$img"
        compare_runs . . map $out --start-offset=600k --max-length=1M "$img"
        compare_runs . . map $out --start-offset=100 --max-length=1000 "$img"
        compare_runs . . map $out --start-offset=1.5k "$img"
        compare_runs . . map $out --start-offset=3M "$img"
        compare_runs . . map $out --max-length=0 "$img"
        compare_runs . . map $out --start-offset=100M "$img"
        compare_runs . . map $out --max-length=9223372036854775807 "$img"
        compare_runs . . map $out -U "$img"
    done
done
for img in sub/base.raw odd.raw; do
    for out in --output=human --output=json; do
        compare_runs . . map $out -f raw "$img"
        compare_runs . . map $out -f raw --start-offset=1M --max-length=1M "$img"
    done
done
# A QED file read as raw.
compare_runs . . map --output=json -f raw small.qed
# From inside the directory: relative names as given.
compare_runs sub sub map --output=json top.qed
compare_runs sub sub map top.qed

# Errors.
compare_runs . . map --start-offset=-1 plain.qed
compare_runs . . map --start-offset=abc plain.qed
compare_runs . . map --start-offset=8E plain.qed
compare_runs . . map --max-length=1x plain.qed
compare_runs . . map --output=xml plain.qed
compare_runs . . map plain.qed extra
compare_runs . . map
compare_runs . . map -f qed sub/base.raw
compare_runs . . map -f foo plain.qed
compare_runs . . map --bogus plain.qed
compare_runs . . map --start-offset
# A missing file: the same status (qed-img says "Could not open" once,
# docs/qed-img.md).
assert_status 1 "$QED_IMG" map missing.qed 2>/dev/null

report_mismatches
