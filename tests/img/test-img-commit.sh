#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img commit against qemu-img commit 7.2 on the same inputs: the same
# output and exit status, backing files that compare equal, overlays that read
# the same; and what qemu-img never does: the overlay committed into its
# immediate backing file is emptied (no cluster left at depth 0, the file cut
# back to header + L1, qemu-img check clean), which QEMU's own result fails.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"

# setup: q/ (for qemu-img) and o/ (for qed-img) hold the same images: a raw
# base of pattern 3, a QED overlay with data, a zero cluster, data across
# clusters, and a small write; want.raw is what the overlay reads.
setup() {
    rm -rf q o
    mkdir q
    qemu-img create -q -f raw q/base.raw 4M
    qemu-io -f raw -c 'write -P 3 0 4M' q/base.raw >/dev/null
    qemu-img create -q -f qed -b base.raw -F raw q/top.qed 4M
    qemu-io -f qed -c 'write -P 1 0 64k' -c 'write -z 128k 64k' -c 'write -P 2 1M 100k' \
        -c 'write -P 4 3M 4k' q/top.qed >/dev/null
    cp -r q o
    qemu-img convert -O raw q/top.qed want.raw
}

# is_emptied FILE: no cluster of FILE at depth 0, and the file exactly header
# + L1 long (64 KiB clusters, 4-cluster tables: 5 clusters).
is_emptied() {
    [ "$(stat -c %s "$1")" -eq 327680 ] &&
        ! qemu-img map --output=json "$1" | grep -q '"depth": 0'
}

# same_data A B [FMT_A FMT_B]: qemu-img compare finds them equal.
same_data() {
    qemu-img compare -q -f "${3:-raw}" -F "${4:-raw}" "$1" "$2" ||
        fail "$1 and $2 read differently"
}

clean() {
    qemu-img check -q "$@" || fail "qemu-img check $* is not clean"
}

# 1. Into the immediate backing file: both bases equal, and ours empties.
setup
compare_runs q o commit top.qed
same_data q/base.raw o/base.raw
same_data want.raw o/base.raw
same_data o/top.qed want.raw qed raw
clean o/top.qed
is_emptied o/top.qed || fail "qed-img commit left clusters in the overlay"
# The behaviour QEMU never had: its overlay keeps every cluster.
! is_emptied q/top.qed || fail "qemu-img emptied the overlay: update docs/qed-img.md"

# 2. -d keeps the overlay byte for byte; -q prints nothing.
setup
cp o/top.qed top.before
compare_runs q o commit -d -q top.qed
assert_same_bytes top.before o/top.qed
same_data q/base.raw o/base.raw

# 3. -p: the same result, qemu-img's progress line, ending at 100%.
setup
(cd q && qemu-img commit -p -t none -r 1G top.qed) >q.out
(cd o && "$QED_IMG" commit -p -t none -r 1G top.qed) >o.out 2>o.err || fail "commit -p failed"
tr '\r' '\n' <o.out | grep -q '^    (100.00/100%)$' || fail "no 100% progress line"
tr '\r' '\n' <o.out | grep -v '^    (' >o.text
tr '\r' '\n' <q.out | grep -v '^    (' >q.text
diff -u q.text o.text || fail "commit -p: the text besides the progress differs"
[ ! -s o.err ] || fail "commit -p wrote to stderr: $(cat o.err)"
same_data q/base.raw o/base.raw

# 4. A QED chain base <- mid <- top: -b into the deeper base implies -d;
#    -b naming the immediate backing file empties (qemu-img: -b implies -d).
setup_chain() {
    rm -rf q o
    mkdir q
    qemu-img create -q -f qed q/base.qed 4M
    qemu-io -f qed -c 'write -P 7 0 2M' q/base.qed >/dev/null
    qemu-img create -q -f qed -b base.qed -F qed q/mid.qed 4M
    qemu-io -f qed -c 'write -P 8 64k 64k' -c 'write -z 512k 128k' q/mid.qed >/dev/null
    qemu-img create -q -f qed -b mid.qed -F qed q/top.qed 4M
    qemu-io -f qed -c 'write -P 9 128k 64k' -c 'write -P 6 3M 64k' q/top.qed >/dev/null
    cp -r q o
    qemu-img convert -O raw q/top.qed want.raw
}
setup_chain
cp o/top.qed top.before
cp o/mid.qed mid.before
compare_runs q o commit -b base.qed top.qed
same_data q/base.qed o/base.qed qed qed
same_data o/base.qed want.raw qed raw
assert_same_bytes top.before o/top.qed
assert_same_bytes mid.before o/mid.qed
clean o/base.qed
setup_chain
compare_runs q o commit -b mid.qed top.qed
same_data o/top.qed want.raw qed raw
same_data q/mid.qed o/mid.qed qed qed
clean o/top.qed
clean o/mid.qed
is_emptied o/top.qed || fail "commit -b IMMEDIATE did not empty the overlay"
# -b by absolute path finds the same image.
setup_chain
"$QED_IMG" commit -q -b "$T/o/base.qed" o/top.qed || fail "commit -b ABSOLUTE failed"
same_data o/base.qed want.raw qed raw

# 5. A base smaller than the overlay grows to its size, as in QEMU.
rm -rf q o
mkdir q
qemu-img create -q -f raw q/base.raw 1M
qemu-img create -q -f qed -b base.raw -F raw q/top.qed 4M
qemu-io -f qed -c 'write -P 5 3M 64k' q/top.qed >/dev/null
cp -r q o
compare_runs q o commit top.qed
[ "$(stat -c %s o/base.raw)" -eq "$(stat -c %s q/base.raw)" ] || fail "base size differs"
same_data q/base.raw o/base.raw

# A base that must grow while its own backing file reaches past its end would
# show that file where the top read zeros: refused before anything is written,
# as qemu-img's commit fails there (Block job failed: Operation not supported).
rm -rf q o
mkdir q
qemu-img create -q -f raw q/bot.raw 4M
qemu-io -f raw -c 'write -P 7 0 4M' q/bot.raw >/dev/null
qemu-img create -q -f qed -b bot.raw -F raw q/mid.qed 1M
qemu-img create -q -f qed -b mid.qed -F qed q/top.qed 4M
qemu-io -f qed -c 'write -P 1 0 64k' q/top.qed >/dev/null
cp -r q o
qemu-img convert -O raw q/top.qed want.raw
cp o/top.qed top.before
cp o/mid.qed mid.before
assert_status 1 qemu-img commit -q q/top.qed 2>/dev/null
assert_status 1 "$QED_IMG" commit o/top.qed 2>err
grep -q "Could not grow 'o/mid.qed'.*'o/bot.raw' would show through" err ||
    fail "grow over a longer backing file: $(cat err)"
assert_same_bytes top.before o/top.qed
assert_same_bytes mid.before o/mid.qed
same_data o/top.qed want.raw qed raw

# 6. Error paths: the same message and status; nothing changes.
setup
cp o/top.qed top.before
compare_runs q o commit -f raw base.raw
compare_runs q o commit -b nonexist top.qed
compare_runs q o commit -b top.qed top.qed
compare_runs q o commit
compare_runs q o commit -r xx top.qed
compare_runs q o commit -r -1 top.qed
compare_runs q o commit -r 8E top.qed
compare_runs q o commit -r 99999999999999999999 top.qed
compare_runs q o commit -t bogus top.qed
compare_runs q o commit -f bogus top.qed
compare_runs q o commit top.qed extra
# -p: qemu-img draws the first line once the image is open, and ends it on
# every exit.
compare_runs q o commit -p -f raw base.raw
compare_runs q o commit -p -b nonexist top.qed
# A missing image: the same output (the messages differ as documented).
(cd q && qemu-img commit -p missing.qed) >q.p 2>/dev/null || true
(cd o && "$QED_IMG" commit -p missing.qed) >o.p 2>/dev/null || true
cmp -s q.p o.p || fail "commit -p of a missing image: the output differs"
assert_same_bytes top.before o/top.qed
# A missing image: both fail naming it (qemu-img repeats the prefix).
assert_status 1 "$QED_IMG" commit o/missing.qed 2>err
grep -q "Could not open 'o/missing.qed'.*No such file" err || fail "missing: $(cat err)"
# A backing loop: refused (qemu-img stumbles on its own lock instead).
qemu-img create -q -f qed o/a.qed 1M
qemu-img create -q -f qed -b a.qed -F qed o/b.qed 1M
qemu-img rebase -q -u -b b.qed -F qed o/a.qed
assert_status 1 "$QED_IMG" commit o/a.qed 2>err
grep -q "infinite loop" err || fail "loop: $(cat err)"
# --object and --image-opts are refused clearly.
assert_status 1 "$QED_IMG" commit --object secret,id=s0,data=x o/top.qed 2>err
grep -q -- "--object is not supported" err || fail "--object: $(cat err)"
assert_status 1 "$QED_IMG" commit --image-opts o/top.qed 2>/dev/null

# 7. Locks: the overlay held by qemu-io, and a QED base held by a reader
#    (the commit reopens the base read-write, as qemu-img does).
hold() {
    qemu-io "$@" -c 'sleep 100000' &
    HOLDER=$!
    on_exit "kill $HOLDER 2>/dev/null"
    sleep 0.5
}
unhold() {
    kill "$HOLDER" 2>/dev/null || true
    wait "$HOLDER" 2>/dev/null || true
}
setup_chain
cp o/top.qed top.before
hold -f qed q/top.qed
compare_runs . . commit q/top.qed
unhold
hold -f qed -r o/mid.qed
compare_runs . . commit -f qed o/top.qed
assert_same_bytes top.before o/top.qed
clean o/mid.qed
# --locking=off neither takes nor heeds locks (the reader sees a change).
"$QED_IMG" commit -q --locking=off o/top.qed || fail "commit --locking=off"
unhold
same_data o/mid.qed want.raw qed raw
assert_status 1 "$QED_IMG" commit --locking=maybe o/top.qed 2>err
grep -q -- "--locking must be used with auto, on or off" err || fail "--locking: $(cat err)"

# 8. Files the user cannot write (as nobody when run as root): a read-only
#    overlay, and a read-only base that the commit cannot reopen read-write.
as_user=""
if [ "$(id -u)" -eq 0 ]; then
    if command -v setpriv >/dev/null && id nobody >/dev/null 2>&1 &&
        getent group nogroup >/dev/null; then
        as_user="setpriv --reuid=nobody --regid=nogroup --clear-groups"
        chmod 0755 "$T"
    else
        as_user=skip
    fi
fi
if [ "$as_user" != skip ]; then
    setup
    chmod -R a+rwX o
    chmod 0444 o/base.raw
    cp o/top.qed top.before
    assert_status 1 $as_user "$QED_IMG" commit o/top.qed 2>err
    grep -q "base.raw.*Permission denied" err || fail "read-only base: $(cat err)"
    assert_same_bytes top.before o/top.qed
    chmod 0644 o/base.raw
    chmod 0444 o/top.qed
    for cmd in "commit" "rebase -u -b x.raw -F raw" "amend -o backing_fmt=qed"; do
        # shellcheck disable=SC2086
        assert_status 1 $as_user "$QED_IMG" $cmd o/top.qed 2>err
        grep -q "Could not open 'o/top.qed': Permission denied" err || fail "$cmd: $(cat err)"
    done
    assert_same_bytes top.before o/top.qed
fi

# A damaged table of the overlay stops the commit before the base changes
# (the metadata is walked first), as qemu-img's commit fails untouched.
qemu-img create -q -f raw db.raw 4M
qemu-img create -q -f qed -o cluster_size=4k -b db.raw -F raw do.qed 4M
qemu-io -c 'write -P 5 0 8k' do.qed >/dev/null
python3 - do.qed <<'PY'
import struct, sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(40); l1 = struct.unpack('<Q', f.read(8))[0]
    f.seek(l1); l2 = struct.unpack('<Q', f.read(8))[0]
    f.seek(l2 + 8); f.write(struct.pack('<Q', 1 << 40))  # past the end of the file
PY
cp db.raw db.before
cp do.qed do.before
assert_status 1 "$QED_IMG" commit do.qed 2>err
grep -q "do.qed" err || fail "damaged overlay: the error names no file: $(cat err)"
cmp -s db.raw db.before || fail "a commit that failed on a damaged overlay changed the base"
cmp -s do.qed do.before || fail "a commit that failed on a damaged overlay changed it"

report_mismatches
