# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers shared by the qed-img tests (sourced after tests/functions.sh):
# run one qemu-img command line with both tools and collect every difference,
# so that one run of a test lists all the cases that differ.

mismatches=0
cases=0

# Records one difference and goes on (long command lines are cut short).
mismatch() {
    echo "MISMATCH: $*" | cut -c 1-300 >&2
    mismatches=$((mismatches + 1))
}

# img_run_both QDIR ODIR ARGS...: runs `qemu-img ARGS` in QDIR and
# `qed-img ARGS` in ODIR and counts a case, without comparing them (for
# intended differences): $T/q.out, q.err, o.out, o.err; statuses in
# $qemu_status and $ours.
img_run_both() {
    qdir=$1
    odir=$2
    shift 2
    cases=$((cases + 1))
    set +e
    (cd "$qdir" && qemu-img "$@") >"$T/q.out" 2>"$T/q.err"
    qemu_status=$?
    (cd "$odir" && "$QED_IMG" "$@") >"$T/o.out" 2>"$T/o.err"
    ours=$?
    set -e
}

# compare_runs QDIR ODIR ARGS...: runs `qemu-img ARGS` in QDIR and
# `qed-img ARGS` in ODIR and compares their stdout, their stderr (with the
# program name replaced; a missing final newline added) and their exit
# status. Leaves qemu-img's status in $qemu_status.
compare_runs() {
    img_run_both "$@"
    sed 's/qemu-img/qed-img/g' "$T/q.err" | awk 1 >"$T/q.err.norm"
    diff -u "$T/q.out" "$T/o.out" >&2 || mismatch "$*: stdout differs (qemu-img: -, qed-img: +)"
    diff -u "$T/q.err.norm" "$T/o.err" >&2 ||
        mismatch "$*: stderr differs (qemu-img: -, qed-img: +)"
    [ "$qemu_status" -eq "$ours" ] || mismatch "$*: qemu-img exited $qemu_status, qed-img $ours"
}

# Ends the comparisons: fails when any case differed.
report_mismatches() {
    [ "$mismatches" -eq 0 ] || fail "$mismatches mismatches in $cases cases (see above)"
    echo "OK: $cases cases"
}
