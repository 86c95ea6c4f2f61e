#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img rebase against qemu-img rebase 7.2 on the same inputs: the same
# output and exit status, and an image that reads as before (qemu-img
# compare) and checks clean. Where QEMU allocates needlessly (data clusters of
# zeros where the old backing file read zeros) or writes a name no reader
# opens, ours must not: those checks fail on QEMU's result.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"

# setup: q/sub and o/sub hold old.raw, new.raw and t.qed (backing old.raw,
# 64 KiB clusters, 2 MiB) plus t0.qed, a copy of t.qed.
#   old: 5s over [0, 1M) but zeros at [4096, 4608)   new: 5s over [512k, 1.5M)
#   t:   data at [64k, +4k), a zero cluster at 1M
setup() {
    rm -rf q o
    mkdir -p q/sub
    qemu-img create -q -f raw q/sub/old.raw 2M
    qemu-io -f raw -c 'write -P 5 0 1M' -c 'write -P 0 4096 512' q/sub/old.raw >/dev/null
    qemu-img create -q -f raw q/sub/new.raw 2M
    qemu-io -f raw -c 'write -P 5 512k 1M' q/sub/new.raw >/dev/null
    qemu-img create -q -f qed -b old.raw -F raw q/sub/t.qed 2M
    qemu-io -f qed -c 'write -P 9 64k 4k' -c 'write -z 1M 64k' q/sub/t.qed >/dev/null
    cp q/sub/t.qed q/sub/t0.qed
    cp -r q o
}

same_data() {
    qemu-img compare -q "$1" "$2" || fail "$1 and $2 read differently"
}

# allocated FILE: qemu-img check's count of data clusters.
allocated() {
    qemu-img check --output=json "$1" | sed -n 's/.*"allocated-clusters": \([0-9]*\).*/\1/p'
}

# 1. Safe mode onto another raw file, found relative to the image.
setup
compare_runs q o rebase -b new.raw -F raw sub/t.qed
same_data o/sub/t0.qed o/sub/t.qed
same_data q/sub/t.qed o/sub/t.qed
qemu-img check -q o/sub/t.qed || fail "check after rebase is not clean (leaks?)"
# Exactly the clusters that differ: [0,64k) and [128k,512k) as data beside
# the cluster t held (8); [512k+...,1.5M) where old read zeros as zero
# clusters, not data.
[ "$(allocated o/sub/t.qed)" -eq 8 ] || fail "rebase allocated $(allocated o/sub/t.qed), not 8"
[ "$(allocated q/sub/t.qed)" -gt 8 ] || fail "qemu-img no longer allocates needlessly"
zero_run='"start": 1048576, "length": 524288, "depth": 0, "present": true, "zero": true'
qemu-img map --output=json o/sub/t.qed | grep -q "$zero_run, \"data\": false" ||
    fail "the zeros of the old backing file are not zero clusters"

# 2. -b "": everything the old backing file showed is copied; no backing file.
setup
compare_runs q o rebase -b "" sub/t.qed
same_data o/sub/t0.qed o/sub/t.qed
qemu-img check -q o/sub/t.qed || fail "check after rebase -b '' is not clean"
qemu-img info o/sub/t.qed | grep -q '^backing file' && fail "rebase -b '' kept a backing file"
[ "$(allocated o/sub/t.qed)" -le "$(allocated q/sub/t.qed)" ] || fail "rebase -b '' allocates more"

# 2b. An image without a backing file gets one: where it read zeros and the
#     new backing file has data, zero clusters (also in a partial last
#     cluster, as zeroed data).
rm -rf q o
mkdir q
qemu-img create -q -f qed q/alone.qed 1000k
qemu-io -f qed -c 'write -P 4 0 64k' -c 'write -P 6 896k 32k' q/alone.qed >/dev/null
qemu-img create -q -f raw q/nb.raw 1000k
qemu-io -f raw -c 'write -P 8 0 1000k' q/nb.raw >/dev/null
cp -r q o
cp o/alone.qed alone.before
compare_runs q o rebase -b nb.raw -F raw alone.qed
same_data alone.before o/alone.qed
same_data q/alone.qed o/alone.qed
qemu-img check -q o/alone.qed || fail "check after rebase of an image without backing file"
[ "$(allocated o/alone.qed)" -le "$(allocated q/alone.qed)" ] || fail "alone: allocates more"
qemu-img map --output=json o/alone.qed |
    grep -q '"start": 65536, "length": 851968, "depth": 0, "present": true, "zero": true' ||
    fail "alone: no zero clusters where it read zeros"

# 3. -u rewrites the header only: the same bytes as qemu-img's.
setup
compare_runs q o rebase -u -b new.raw -F raw sub/t.qed
assert_same_bytes q/sub/t.qed o/sub/t.qed
compare_runs q o rebase -u -b other/base.qed -F qed sub/t.qed
assert_same_bytes q/sub/t.qed o/sub/t.qed
compare_runs q o rebase -u -b "" sub/t.qed
assert_same_bytes q/sub/t.qed o/sub/t.qed
setup
compare_runs q o rebase -u sub/t.qed
assert_same_bytes q/sub/t.qed o/sub/t.qed

# -p with -u: the first and the last line, as qemu-img draws them.
setup
compare_runs q o rebase -p -u -b new.raw -F raw sub/t.qed
cmp -s q/sub/t.qed o/sub/t.qed || fail "rebase -p -u: the headers differ"

# 4. Names the header area cannot hold are refused before anything is
#    written; qemu-img writes a 5000-byte name that no QED reader opens.
setup
long=$(head -c 5000 /dev/zero | tr '\0' y)
assert_status 1 "$QED_IMG" rebase -u -F raw -b "$long" o/sub/t.qed 2>err
grep -q "header (the name is 5000 bytes; 'o/sub/t.qed' holds at most 4095)" err ||
    fail "long name: $(cut -c 1-100 err)"
assert_same_bytes o/sub/t0.qed o/sub/t.qed
assert_status 1 "$QED_IMG" rebase -F raw -b "$long" o/sub/t.qed 2>/dev/null
assert_same_bytes o/sub/t0.qed o/sub/t.qed
qemu-img rebase -u -F raw -b "$long" q/sub/t.qed 2>/dev/null || true
if qemu-img info q/sub/t.qed >/dev/null 2>&1; then
    fail "qemu-img no longer writes unreadable names: update docs/qed-img.md"
fi
# The longest name that fits is taken and read back.
max=$(head -c 4095 /dev/zero | tr '\0' z)
"$QED_IMG" rebase -u -F raw -b "$max" o/sub/t.qed || fail "a 4095-byte name was refused"
qemu-img info o/sub/t.qed | grep -q "^backing file: $max" || fail "the 4095-byte name"
"$QED_IMG" rebase -q -u -F raw -b old.raw o/sub/t.qed
same_data o/sub/t0.qed o/sub/t.qed
# 4 KiB clusters: the header area holds 4032 bytes of name.
qemu-img create -q -f qed -o cluster_size=4k small.qed 1M
assert_status 1 "$QED_IMG" rebase -u -F raw -b "$(head -c 4033 /dev/zero | tr '\0' s)" \
    small.qed 2>err
grep -q "at most 4032" err || fail "4k clusters: $(cut -c 1-100 err)"
"$QED_IMG" rebase -u -F raw -b "$(head -c 4032 /dev/zero | tr '\0' s)" small.qed ||
    fail "a 4032-byte name was refused on 4k clusters"
qemu-img info small.qed | grep -q '^backing file: s\{4032\}$' ||
    fail "small.qed does not name the 4032-byte name"
"$QED_IMG" check -q small.qed || fail "small.qed after a 4032-byte name"
# Beyond the cluster: both refuse.
huge=$(head -c 70000 /dev/zero | tr '\0' x)
set +e
qemu-img rebase -u -F raw -b "$huge" q/sub/t0.qed 2>/dev/null
qs=$?
"$QED_IMG" rebase -u -F raw -b "$huge" o/sub/t0.qed 2>err
os=$?
set -e
[ "$qs" -eq 1 ] && [ "$os" -eq 1 ] || fail "70000-byte name: qemu-img $qs, qed-img $os"
grep -q "No space left in the file header" err || fail "70000-byte name: no message"

# 5. Error paths: the same message and status, nothing written. qemu-img
#    copies before it finds -F missing; ours refuses first.
setup
compare_runs q o rebase sub/t.qed
compare_runs q o rebase -b missing.raw -F raw sub/t.qed
compare_runs q o rebase -b new.raw -F bogus sub/t.qed
compare_runs q o rebase -b new.raw -F raw -t bogus sub/t.qed
compare_runs q o rebase -b new.raw -F raw -T bogus sub/t.qed
compare_runs q o rebase -b new.raw sub/t.qed
compare_runs q o rebase -u -b missing.raw sub/t.qed
compare_runs q o rebase -f raw -b new.raw -F raw sub/old.raw
# -p: qemu-img draws the first line before it checks anything else, and ends
# it on every exit.
compare_runs q o rebase -p -b missing.raw -F raw sub/t.qed
compare_runs q o rebase -p -b new.raw -F raw -t bogus sub/t.qed
# A missing image: the same output (the messages differ as documented).
(cd q && qemu-img rebase -p -b new.raw -F raw sub/missing.qed) >q.p 2>/dev/null || true
(cd o && "$QED_IMG" rebase -p -b new.raw -F raw sub/missing.qed) >o.p 2>/dev/null || true
cmp -s q.p o.p || fail "rebase -p of a missing image: the output differs"
assert_status 1 "$QED_IMG" rebase -b new.raw -F raw o/sub/missing.qed 2>err
grep -q "Could not open 'o/sub/missing.qed'.*No such file" err || fail "missing: $(cat err)"
assert_same_bytes o/sub/t0.qed o/sub/t.qed
cmp -s q/sub/old.raw o/sub/old.raw || fail "rebase of a raw image changed it"
# The image itself as its backing file: its own lock stops it.
assert_status 1 "$QED_IMG" rebase -b t.qed -F qed o/sub/t.qed 2>err
grep -q 'Failed to get shared "write" lock' err || fail "self: $(cat err)"
assert_same_bytes o/sub/t0.qed o/sub/t.qed
# Under -U no lock stops it, nor a rebase onto an image above (here a second
# name of the same file, and an overlay of the image): refused as a loop,
# where qemu-img writes an image that no reader opens.
ln o/sub/t.qed o/sub/alias.qed
qemu-img create -q -f qed -b t.qed -F qed o/sub/above.qed 2M
for b in t.qed alias.qed above.qed; do
    assert_status 1 "$QED_IMG" rebase -U -b "$b" -F qed o/sub/t.qed 2>err
    grep -q "Could not change the backing file to '$b': .*infinite loop" err ||
        fail "-U onto $b: $(cat err)"
    assert_same_bytes o/sub/t0.qed o/sub/t.qed
done
assert_status 1 "$QED_IMG" rebase --locking=off -b above.qed -F qed o/sub/t.qed 2>/dev/null
assert_same_bytes o/sub/t0.qed o/sub/t.qed
qemu-img info --backing-chain o/sub/t.qed >/dev/null || fail "the image no longer opens"

# 6. Held by qemu-io: qemu-img's lock error.
qemu-io -f qed -c 'sleep 100000' q/sub/t.qed &
HOLDER=$!
on_exit "kill $HOLDER 2>/dev/null"
sleep 0.5
compare_runs . . rebase -b new.raw -F raw q/sub/t.qed
compare_runs . . rebase -u -b new.raw -F raw q/sub/t.qed
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true

# 7. Onto a QED backing file with other clusters, zero clusters and a
#    shorter size; -p draws progress; -U opens the backing files shared.
setup
qemu-img create -q -f qed -o cluster_size=4k o/sub/nb.qed 1536k
qemu-io -f qed -c 'write -P 5 0 256k' -c 'write -z 4k 4k' o/sub/nb.qed >/dev/null
"$QED_IMG" rebase -p -U -b nb.qed -F qed o/sub/t.qed >out || fail "rebase onto nb.qed"
tr '\r' '\n' <out | grep -q '^    (100.00/100%)$' || fail "rebase -p: no 100% line"
same_data o/sub/t0.qed o/sub/t.qed
qemu-img check -q o/sub/t.qed || fail "check after rebase onto nb.qed"
qemu-img info o/sub/t.qed | grep -q '^backing file: nb.qed ' || fail "not rebased onto nb.qed"

# 8. A large sparse image: past the end of both backing files nothing is
#    compared (qemu-img reads its way through every megabyte of 4 TiB).
rm -rf o
mkdir o
qemu-img create -q -f qed o/huge.qed 4T
qemu-img create -q -f raw o/small.raw 1M
qemu-io -f raw -c 'write -P 6 0 1M' o/small.raw >/dev/null
timeout 60 "$QED_IMG" rebase -b small.raw -F raw o/huge.qed ||
    fail "rebase of a 4 TiB sparse image failed or took over a minute"
qemu-io -f qed -c 'read -P 0 0 2M' o/huge.qed | grep -q '^read 2097152/' ||
    fail "the huge image does not read zeros where the new backing file has data"
qemu-img check -q o/huge.qed || fail "check after the rebase of the huge image"

report_mismatches
