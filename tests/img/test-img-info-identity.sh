#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img info prints what qemu-img info prints, human and JSON, byte for
# byte: on empty QED images of many geometries, on raw files, on images that
# QEMU wrote data into, along backing chains (--backing-chain), on names that
# need JSON escapes, and for errors. The one intended difference, the dirty
# flag, is checked against qemu-img's output with that flag corrected.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io dd sed

cd "$T"

# Runs `info ARGS` with both tools in $T and compares what they print.
compare_info() {
    compare_runs . . info "$@"
}

# Both output formats, with and without --backing-chain.
compare_all() {
    compare_info "$@"
    compare_info --output=json "$@"
    compare_info --backing-chain "$@"
    compare_info --backing-chain --output=json "$@"
}

# --- empty QED images: geometry x size (QEMU cannot open table_size=1) --------
n=0
for cluster in 4k 64k 1M; do
    for table in 2 4 16; do
        for size in 0 1000 1M 5T; do
            n=$((n + 1))
            if qemu-img create -q -f qed -o "cluster_size=$cluster,table_size=$table" \
                "g$n.qed" "$size" 2>/dev/null; then
                compare_info "g$n.qed"
                compare_info --output=json "g$n.qed"
                rm -f "g$n.qed"
            fi
        done
    done
done
qemu-img create -q -f qed -o cluster_size=64M,table_size=2 huge.qed 0
compare_all huge.qed
rm -f huge.qed

# --- raw files --------------------------------------------------------------------
: >empty.raw
qemu-img create -q -f raw sparse.raw 1M
head -c 1000 /dev/urandom >odd.raw
head -c 3M /dev/urandom >full.raw
for f in empty.raw sparse.raw odd.raw full.raw; do
    compare_all "$f"
    compare_info -f raw "$f"
done

# --- images with data written by QEMU -----------------------------------------------
qemu-img create -q -f qed data64k.qed 64M
qemu-io -f qed -c 'write -P 0xaa 0 1M' -c 'write -P 0x55 3M 4k' \
    -c 'write -z 8M 1M' -c 'write -P 1 63M 512' data64k.qed >/dev/null
qemu-img create -q -f qed -o cluster_size=4k,table_size=2 data4k.qed 16M
qemu-io -f qed -c 'write -P 0xaa 0 64k' -c 'write -P 0x55 7M 12k' data4k.qed >/dev/null
for f in data64k.qed data4k.qed; do
    compare_all "$f"
    compare_info -f qed "$f"
    compare_info -f raw "$f"
    compare_info -U "$f"
    compare_info --output=human "$f"
done

# --- backing chains ---------------------------------------------------------------------
mkdir -p sub/deeper
qemu-img create -q -f raw base.raw 8M
qemu-io -f raw -c 'write -P 7 0 64k' base.raw >/dev/null
qemu-img create -q -f qed -b ../base.raw -F raw sub/mid.qed
qemu-img create -q -f qed -b mid.qed -F qed sub/top.qed 16M
qemu-io -f qed -c 'write -P 9 1M 64k' sub/top.qed >/dev/null
qemu-img create -q -f qed -b ../top.qed -F qed sub/deeper/over.qed
qemu-img create -q -f qed -b "$T/base.raw" -F raw abs.qed
qemu-img create -q -f qed -b "$T/sub/top.qed" -F qed abs-top.qed
qemu-img create -q -f qed -b sub/mid.qed -F qed rel.qed
for f in sub/mid.qed sub/top.qed ./sub/top.qed "$T/sub/top.qed" sub/../sub/top.qed \
    sub/deeper/over.qed abs.qed abs-top.qed rel.qed; do
    compare_all "$f"
done
(cd sub && compare_all top.qed)
(cd sub/deeper && compare_all over.qed)

# A missing backing file is reported but not opened without --backing-chain.
qemu-img create -q -f qed -u -b missing.qed -F qed orphan.qed 1M
compare_info orphan.qed
compare_info --output=json orphan.qed

# The backing-file feature with an empty name (bit 0 of the features).
qemu-img create -q -f qed noname.qed 1M
printf '\001' | dd of=noname.qed bs=1 seek=16 conv=notrunc status=none
compare_all noname.qed

# A loop through two images.
qemu-img create -q -f qed -u -b loop2.qed -F qed loop1.qed 1M
qemu-img create -q -f qed -u -b loop1.qed -F qed loop2.qed 1M
compare_all loop1.qed

# --- names that JSON must escape ----------------------------------------------------------
for name in 'we"ird\name.qed' "$(printf 'tab\tand\001ctl\177.qed')" 'utf8 é€😀.qed' \
    "$(printf 'bad\377\300\200\355\240\200\357\277\276.qed')" 'comma,name.qed'; do
    qemu-img create -q -f qed -u -b "$name.base" -F raw "./$name" 1M
    compare_info "./$name"
    compare_info --output=json "./$name"
done

# --- errors -------------------------------------------------------------------------------
compare_info
compare_info a.qed b.qed
compare_info --output=xml data64k.qed
compare_info --output data64k.qed
compare_info -x data64k.qed
compare_info -f qed base.raw
compare_info -f foo data64k.qed

# --- intended differences (docs/qed-img.md) ----------------------------------------------

# A dirty image (NEED_CHECK, bit 1 of the features at offset 16): QEMU 7.2
# clears the flag in memory while opening the image, so qemu-img info always
# says clean; qed-img tells the truth.
qemu-img create -q -f qed -b base.raw -F raw dirty.qed
qemu-io -f qed -c 'write -P 3 0 64k' dirty.qed >/dev/null
printf '\003' | dd of=dirty.qed bs=1 seek=16 conv=notrunc status=none
cases=$((cases + 1))
qemu-img info dirty.qed | sed '/^cluster_size: /a cleanly shut down: no' >want.txt
"$QED_IMG" info dirty.qed >got.txt
diff -u want.txt got.txt || mismatch "info on a dirty image"
qemu-img info --output=json dirty.qed | sed 's/"dirty-flag": false/"dirty-flag": true/' >want.txt
"$QED_IMG" info --output=json dirty.qed >got.txt
diff -u want.txt got.txt || mismatch "info --output=json on a dirty image"
grep -q '"dirty-flag": true' got.txt || mismatch "the dirty flag is not reported"

# A missing file or backing file: the same status, one "Could not open" less.
for args in "missing.qed" "--backing-chain orphan.qed"; do
    cases=$((cases + 1))
    # shellcheck disable=SC2086
    assert_status 1 "$QED_IMG" info $args 2>err.txt
    grep -q "Could not open 'missing.qed': No such file or directory" err.txt ||
        mismatch "info $args: unexpected error: $(cat err.txt)"
done

# A loop through the same file under growing names: qemu-img follows it until
# the name is too long; qed-img recognizes the file.
qemu-img create -q -f qed -u -b ./self.qed -F qed self.qed 1M
cases=$((cases + 1))
assert_status 1 "$QED_IMG" info --backing-chain self.qed 2>err.txt
grep -q "Backing file './self.qed' creates an infinite loop." err.txt ||
    mismatch "self loop: unexpected error: $(cat err.txt)"

# table_size=1 images, which QEMU refuses to open.
qemu-img create -q -f qed -o table_size=1 t1.qed 1M
cases=$((cases + 1))
"$QED_IMG" info --output=json t1.qed >got.txt || mismatch "info on a table_size=1 image failed"
grep -q '"virtual-size": 1048576' got.txt || mismatch "table_size=1: $(cat got.txt)"

report_mismatches
