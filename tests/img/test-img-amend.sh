#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img amend against qemu-img amend 7.2: the same messages and status
# where both refuse (syntax, raw images, locks); backing_file and
# backing_fmt, which QEMU's QED driver cannot amend, write the same header
# bytes as `qemu-img rebase -u`; creation-only options are refused with
# qemu-img's words for them, and the image is unchanged.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io

cd "$T"
mkdir q o
for d in q o; do
    qemu-img create -q -u -f qed -b base.raw -F raw "$d/a.qed" 1M
    qemu-img create -q -f raw "$d/x.raw" 1M
done
cp o/a.qed a.before

# 1. Where qemu-img and qed-img agree.
compare_runs q o amend a.qed
compare_runs q o amend -o help
compare_runs q o amend -o , a.qed
compare_runs q o amend -o backing_file=b.raw
compare_runs q o amend -f raw -o size=2M x.raw
compare_runs q o amend -f raw -o help x.raw
compare_runs q o amend -f raw -o help
compare_runs q o amend -t bogus -o backing_fmt=qed a.qed
assert_same_bytes a.before o/a.qed

# 2. Options only creation sets, and unknown ones: refused, nothing written.
for opt in cluster_size=4k table_size=2 size=2M; do
    assert_status 1 "$QED_IMG" amend -o "$opt" o/a.qed 2>err
    printf "qed-img: Invalid parameter '%s'\nThis option is only supported for image creation\n" \
        "${opt%%=*}" >want
    diff -u want err || fail "amend -o $opt"
done
assert_status 1 "$QED_IMG" amend -o bogus=1 o/a.qed 2>err
grep -q "Invalid parameter 'bogus'" err || fail "bogus: $(cat err)"
assert_status 1 "$QED_IMG" amend -o backing_file=b.raw o/a.qed 2>err
grep -q "backing format must be specified" err || fail "no backing_fmt: $(cat err)"
assert_status 1 "$QED_IMG" amend -o backing_file=b.raw,backing_fmt=vmdk o/a.qed 2>/dev/null
long=$(head -c 5000 /dev/zero | tr '\0' n)
assert_status 1 "$QED_IMG" amend -o "backing_file=$long,backing_fmt=raw" o/a.qed 2>err
grep -q "No space left in the file header" err || fail "long name: $(cut -c 1-80 err)"
assert_status 1 "$QED_IMG" amend -o backing_fmt=raw o/missing.qed 2>/dev/null
assert_same_bytes a.before o/a.qed
# -p with options refused: qemu-img ends the progress line without drawing
# one (its stdout is one newline; also for qcow2, which amends).
for opt in bogus=1 cluster_size=4k; do
    qemu-img amend -p -o "$opt" q/a.qed >want 2>/dev/null || true
    "$QED_IMG" amend -p -o "$opt" o/a.qed >out 2>/dev/null || true
    cmp -s want out || fail "amend -p -o $opt: stdout differs from qemu-img's"
done
assert_same_bytes a.before o/a.qed

# 3. -o help lists what QED amends.
"$QED_IMG" amend -o help o/a.qed >out
cat >want <<'EOF'
Amend options for 'qed':
  backing_file=<str>     - File name of a base image
  backing_fmt=<str>      - Image format of the base image
EOF
diff -u want out || fail "amend -o help"
"$QED_IMG" amend -f qed -o help >out
diff -u want out || fail "amend -f qed -o help"

# 4. backing_file and backing_fmt: the bytes of qemu-img rebase -u.
"$QED_IMG" amend -o backing_file=other/b.qed,backing_fmt=qed o/a.qed
qemu-img rebase -u -b other/b.qed -F qed q/a.qed
assert_same_bytes q/a.qed o/a.qed
"$QED_IMG" amend -p -o backing_fmt=raw o/a.qed >out
tr '\r' '\n' <out | grep -q '^    (100.00/100%)$' || fail "amend -p: no 100% line"
qemu-img rebase -u -b other/b.qed -F raw q/a.qed
assert_same_bytes q/a.qed o/a.qed
"$QED_IMG" amend -q -o backing_file= o/a.qed
qemu-img rebase -u -b "" q/a.qed
assert_same_bytes q/a.qed o/a.qed
qemu-img check -q o/a.qed || fail "check after amend"
assert_status 1 "$QED_IMG" amend -o backing_fmt=raw o/a.qed 2>err
grep -q "has no backing file" err || fail "backing_fmt without a name: $(cat err)"

# 5. Held by qemu-io: qemu-img's lock error.
qemu-io -f qed -c 'sleep 100000' o/a.qed &
HOLDER=$!
on_exit "kill $HOLDER 2>/dev/null"
sleep 0.5
compare_runs . . amend -o backing_fmt=raw o/a.qed
kill "$HOLDER"
wait "$HOLDER" 2>/dev/null || true

report_mismatches
