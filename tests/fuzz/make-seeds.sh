#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Writes the fuzz target's seed corpus into DIR: small valid QED images made
# with qemu-img (or qed-img, $QED_IMG) and written with qemu-io, a few
# patched ones (NEED_CHECK set, a bad table entry, references into the
# tables), and the inputs that once
# crashed the library, kept here as hex. Each seed is an 8-byte prefix (see
# tests/fuzz/fuzz-image.c: mode byte, then the seed of the requests) and
# the image file.
#
# Usage: make-seeds.sh DIR
set -eu

dir=${1:?usage: make-seeds.sh DIR}
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if command -v qemu-img >/dev/null 2>&1; then
    create() { qemu-img create -q -f qed "$@"; }
elif [ -n "${QED_IMG:-}" ] && [ -x "$QED_IMG" ]; then
    create() { "$QED_IMG" create -q -f qed "$@"; }
else
    echo "make-seeds: neither qemu-img nor qed-img found" >&2
    exit 77
fi
have_qemu_io=false
command -v qemu-io >/dev/null 2>&1 && have_qemu_io=true

# hex HEXSTRING: writes the bytes to stdout.
hex() { perl -e 'print pack("H*", $ARGV[0])' "$1"; }

# patch FILE OFFSET HEXSTRING: overwrites bytes of FILE in place.
patch_bytes() {
    perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, $ARGV[1], 0);
             print $f pack("H*", $ARGV[2]); close $f' "$1" "$2" "$3"
}

# io IMAGE COMMAND...: qemu-io writes (skipped without qemu-io).
io() {
    img=$1
    shift
    $have_qemu_io || return 0
    for c in "$@"; do
        qemu-io -f qed -c "$c" "$img" >/dev/null
    done
}

# seed NAME IMAGE: one seed per prefix, each doing different requests.
seed() {
    name=$1
    img=$2
    for prefix in 0000000000000001 0407a1b2c3d4e5f6 090f123456789abc 010c0badc0ffee00; do
        { hex "$prefix"; cat "$img"; } >"$dir/$name-$prefix"
    done
}

# QEMU 7.2 refuses one-cluster tables (table_size=1) once written: 2 here.
create -o cluster_size=4096,table_size=2 "$work/empty-4k.qed" 4M
seed empty-4k "$work/empty-4k.qed"

create -o cluster_size=4096,table_size=2 "$work/data-4k.qed" 16M
io "$work/data-4k.qed" "write -P 0x11 0 6k" "write -P 0x22 64k 4k" "write -P 0x33 4M 8k" \
    "write -P 0x44 9M 512"
seed data-4k "$work/data-4k.qed"

# NEED_CHECK set (features at byte 16): a writable open checks and repairs.
cp "$work/data-4k.qed" "$work/dirty-4k.qed"
patch_bytes "$work/dirty-4k.qed" 16 02
seed dirty-4k "$work/dirty-4k.qed"

# A data cluster entry pointing past the end of the file, and NEED_CHECK.
cp "$work/dirty-4k.qed" "$work/bad-entry-4k.qed"
if $have_qemu_io; then
    # The L1 table is at 4 KiB; the first entry of the L2 table it points at.
    l2=$(od -An -tu8 -j 4096 -N 8 "$work/bad-entry-4k.qed" | tr -d ' ')
    [ "$l2" -gt 0 ] && patch_bytes "$work/bad-entry-4k.qed" "$l2" 0000000100000000
fi
seed bad-entry-4k "$work/bad-entry-4k.qed"

# References into metadata: an L2 entry naming the L1 table (at 4 KiB), and
# an L1 entry whose table overlaps the L1 table's second cluster. Requests
# through them must fail and never write over the tables.
if $have_qemu_io; then
    cp "$work/data-4k.qed" "$work/alias-4k.qed"
    l2=$(od -An -tu8 -j 4096 -N 8 "$work/alias-4k.qed" | tr -d ' ')
    patch_bytes "$work/alias-4k.qed" $((l2 + 8)) 0010000000000000
    patch_bytes "$work/alias-4k.qed" $((4096 + 8)) 0020000000000000
    seed alias-4k "$work/alias-4k.qed"
fi

# The backing file need only exist while the image is made: the target
# never opens it.
: >"$work/base.raw"
create -o cluster_size=4096,table_size=2 -b base.raw -F raw "$work/backing-4k.qed" 8M
io "$work/backing-4k.qed" "write -P 0x55 4k 4k"
seed backing-4k "$work/backing-4k.qed"

create -o cluster_size=8192,table_size=4 "$work/table4-8k.qed" 64M
io "$work/table4-8k.qed" "write -P 0x66 0 16k" "write -P 0x77 40M 1k"
seed table4-8k "$work/table4-8k.qed"

create -o cluster_size=65536,table_size=1 "$work/empty-64k.qed" 1G
seed empty-64k "$work/empty-64k.qed"

# Inputs that once crashed or hung the library go here, minimized
# (fuzz-image -minimize_crash=1) and written as hex, one line each:
#   hex 'e8ed...' >"$dir/crash-WHAT"
# None so far: 1.3 million executions found nothing.

ls "$dir" | wc -l | sed 's/$/ seeds/'
