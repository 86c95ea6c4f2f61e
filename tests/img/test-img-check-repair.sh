#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img check -r: every leaky or corrupt image of the corpus is repaired
# (-r all: clean for qed-img and qemu-img, the file no longer, NEED_CHECK
# cleared, the data of every kept reference unchanged through qed-io and
# qemu-io; -r leaks: corruptions left alone, leaks at the end cut off);
# tests/corpus/run-repair.py does that. Then, where QEMU repairs the same
# way (invalid references that leave no leak behind), qed-img and qemu-img
# print the same and leave the same bytes.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io python3 cmp

python3 "$TESTS_DIR/corpus/make-corpus.py" "$T/corpus"
python3 "$TESTS_DIR/corpus/run-repair.py" "$T/corpus" "$QED_IMG" "$QED_IO"

mkdir "$T/q" "$T/o"
for name in l1-unaligned l1-in-header l1-past-eof l1-at-eof l1-overlap-eof \
    l1-beyond-size-bad hdr-need-check; do
    for args in "-r all" "-r all --output=json" "-q -r all"; do
        cp "$T/corpus/$name.qed" "$T/q/x.qed"
        cp "$T/corpus/$name.qed" "$T/o/x.qed"
        # shellcheck disable=SC2086
        compare_runs "$T/q" "$T/o" check $args x.qed
        cmp "$T/q/x.qed" "$T/o/x.qed" >/dev/null || mismatch "$name: check $args: the files differ"
    done
done

# A repair with the image left dirty: NEED_CHECK goes, and -r leaks leaves
# the middle leak (exit 3) while -r all reuses it.
cp "$T/corpus/hdr-need-check-damaged.qed" "$T/d.qed"
assert_status 2 "$QED_IMG" check -r leaks "$T/d.qed" >/dev/null
assert_status 0 "$QED_IMG" check -r all "$T/d.qed" >"$T/out.txt"
grep -q "^    1 corruptions$" "$T/out.txt" || fail "-r all: $(cat "$T/out.txt")"
"$QED_IMG" info "$T/d.qed" | grep -q "cleanly shut down" && fail "NEED_CHECK still set"
assert_status 0 qemu-img check "$T/d.qed" >/dev/null

# -U with -r is refused, as qemu-img refuses it.
compare_runs "$T/q" "$T/o" check -U -r all x.qed
report_mismatches
