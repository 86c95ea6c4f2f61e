#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Image locking against QEMU's: a process (qed-io or qemu-io; read-write,
# read-only or -U) holds an image while another (qed-io or qemu-io, in each
# mode) opens it. Ours must lock the same bytes as QEMU for each mode, refuse
# and admit exactly where QEMU does, and say so in the same words; qed-img
# create/info/check and qemu-img likewise; a raw backing file stays writable
# for others, a QED one does not; --locking=off lets a second opener through.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io
[ -r /proc/locks ] || { echo "SKIP: no /proc/locks" >&2; exit 77; }

cd "$T"

# The bytes of file $1 on which anybody holds an OFD lock: "100 101 " etc.
locked_bytes() {
    awk -v ino="$(stat -c %i "$1")" '
        $2 == "OFDLCK" && $0 !~ /->/ {
            split($6, id, ":")
            if (id[3] == ino) { for (b = $7; b <= $8; b++) print b }
        }' /proc/locks | sort -n | uniq | tr '\n' ' '
}

# The bytes QEMU 7.2 locks for each mode (docs/format.md): a QED image,
# and a raw one (QEMU's raw driver shares everything).
bytes_qed_rw="100 101 103 201 203 "
bytes_qed_ro="100 201 203 "
bytes_qed_shared="100 "
bytes_raw_rw="100 101 "
bytes_raw_ro="100 "
bytes_raw_shared="100 "

# mode_flags MODE: the command-line flags of mode rw, ro or shared.
mode_flags() {
    case $1 in
    rw) echo "" ;;
    ro) echo "-r" ;;
    shared) echo "-r -U" ;;
    esac
}

# start_holder TOOL MODE FILE [FMT]: TOOL (qed-io or qemu-io) holds FILE, of
# format FMT (qed by default, or raw), open in MODE until stop_holder;
# returns once its locks are all visible in /proc/locks (so that nothing
# below races with its open), failing unless they are QEMU's bytes for MODE.
# Sets HOLDER_PID.
start_holder() {
    tool=$1
    mode=$2
    file=$3
    fmt=${4:-qed}
    [ "$tool" = qed-io ] && prog=$QED_IO || prog=qemu-io
    eval "want=\$bytes_${fmt}_$mode"
    # shellcheck disable=SC2046
    "$prog" -f "$fmt" $(mode_flags "$mode") -c 'sleep 100000' "$file" &
    HOLDER_PID=$!
    on_exit "kill $HOLDER_PID 2>/dev/null"
    i=0
    while [ "$(locked_bytes "$file")" != "$want" ]; do
        kill -0 "$HOLDER_PID" 2>/dev/null || fail "$tool $mode holder of $file exited"
        i=$((i + 1))
        [ "$i" -lt 400 ] ||
            fail "$tool $mode holds '$(locked_bytes "$file")' of $file, QEMU's '$want'"
        sleep 0.05
    done
}

# wait_for_bytes FILE WANT WHAT: waits until the bytes locked on FILE are
# WANT (a holder locks its image first and its backing file after it),
# failing with WHAT after 20 seconds.
wait_for_bytes() {
    i=0
    while [ "$(locked_bytes "$1")" != "$2" ]; do
        i=$((i + 1))
        [ "$i" -lt 400 ] || fail "$3 locks '$(locked_bytes "$1")' of $1, QEMU '$2'"
        sleep 0.05
    done
}

stop_holder() {
    kill "$HOLDER_PID" 2>/dev/null || true
    wait "$HOLDER_PID" 2>/dev/null || true
    [ -z "$(locked_bytes "$1")" ] || fail "locks left on $1 after the holder exited"
}

# run_both NAME ARGS...: runs `qemu-io ARGS` and `qed-io ARGS`; both must
# exit alike and print the same stderr (program name aside). Leaves the
# status in $status and qemu-io's stderr in q.err.
run_both() {
    what=$1
    shift
    set +e
    qemu-io "$@" >q.out 2>q.err
    status=$?
    "$QED_IO" "$@" >o.out 2>o.err
    ours=$?
    set -e
    sed 's/qemu-io/qed-io/g' q.err >q.err.norm
    diff -u q.err.norm o.err >&2 || fail "$what: stderr differs (qemu-io: -, qed-io: +)"
    [ "$status" -eq "$ours" ] || fail "$what: qemu-io exited $status, qed-io $ours"
}

# The outcome QEMU's rules give an opener in mode $3 while a holder in mode
# $2 has an image of format $1: "ok", or the lock it fails to get.
expected() {
    case "$1/$2/$3" in
    qed/rw/rw | qed/ro/rw) echo 'Failed to get "write" lock' ;;
    qed/rw/ro) echo 'Failed to get shared "write" lock' ;;
    *) echo ok ;;
    esac
}

"$QED_IMG" create -q -f qed a.qed 4M
qemu-io -c 'write -q -P 0x11 0 64k' a.qed
qemu-img create -q -f raw a.raw 4M
qemu-io -f raw -c 'write -q -P 0x11 0 64k' a.raw

# --- every holder against every opener, both ways -------------------------
for fmt in qed raw; do
for holder in qemu-io qed-io; do
    for hmode in rw ro shared; do
        start_holder "$holder" "$hmode" "a.$fmt" "$fmt"
        for omode in rw ro shared; do
            what="-f $fmt $(mode_flags "$omode") open while $holder $hmode holds"
            # shellcheck disable=SC2046
            run_both "$what" -f "$fmt" $(mode_flags "$omode") -c 'read -q -P 0x11 0 512' "a.$fmt"
            want=$(expected "$fmt" "$hmode" "$omode")
            if [ "$want" = ok ]; then
                [ "$status" -eq 0 ] || fail "$what: refused: $(cat q.err)"
            else
                [ "$status" -eq 1 ] || fail "$what: exited $status, expected 1"
                printf "qemu-io: can't open device a.%s: %s\n%s\n" "$fmt" "$want" \
                    "Is another process using the image [a.$fmt]?" >want.err
                diff -u want.err q.err >&2 || fail "$what: not QEMU's message"
            fi
        done
        # A reader switching to read-write meets the holder as a writer would.
        if [ "$hmode" != rw ]; then
            run_both "reopen -w while $holder $hmode holds" -f "$fmt" -r -c 'reopen -w' "a.$fmt"
            want=$(expected "$fmt" "$hmode" rw)
            if [ "$want" = ok ]; then
                [ "$status" -eq 0 ] || fail "reopen -w while $holder $hmode: $(cat q.err)"
            else
                grep -qx "qemu-io: $want" q.err || fail "reopen -w: $(cat q.err)"
            fi
        fi
        # qed-img info and check as qemu-img info and check.
        compare_runs . . info -f "$fmt" "a.$fmt"
        compare_runs . . check -f "$fmt" "a.$fmt"
        compare_runs . . check -f "$fmt" -r all "a.$fmt"
        compare_runs . . info -f "$fmt" -U "a.$fmt"
        stop_holder "a.$fmt"
    done
done
done

# -U is for read-only opens only.
run_both "-U without -r" -U -c 'read -q 0 512' a.qed
[ "$status" -eq 1 ] || fail "-U without -r: exited $status"
grep -q "force-share=on can only be used with read-only images" q.err || fail "$(cat q.err)"
# (qemu-io lets a -U image be reopened read-write, still sharing everything:
# a writer that lets other writers in. libqed refuses; see docs/design.md.)
"$QED_IO" -r -U -c 'reopen -w' a.qed 2>o.err && fail "reopen -w of a -U image succeeded"
grep -qx "qed-io: force-share=on can only be used with read-only images" o.err ||
    fail "reopen -w of a -U image: $(cat o.err)"
compare_runs . . check -U -r all a.qed

# --- create over a held image ----------------------------------------------
for holder in qemu-io qed-io; do
    for hmode in rw ro; do
        start_holder "$holder" "$hmode" a.qed
        cp a.qed before.qed
        for fmt in qed raw; do
            compare_runs . . create -f $fmt -o preallocation=full a.qed 1M
            [ "$qemu_status" -eq 1 ] ||
                fail "qemu-img create -f $fmt over $holder $hmode: $qemu_status"
            grep -qx 'qemu-img: a.qed: Failed to get "write" lock' "$T/q.err" ||
                fail "create -f $fmt over $holder $hmode: $(cat "$T/q.err")"
            assert_same_bytes before.qed a.qed
        done
        stop_holder a.qed
    done
done
report_mismatches

# --- a backing file held by a writer of its overlay --------------------------
qemu-img create -q -f raw b.raw 4M
"$QED_IMG" create -q -f qed -b b.raw -F raw o.qed
for holder in qemu-io qed-io; do
    start_holder "$holder" rw o.qed
    wait_for_bytes b.raw "$bytes_qed_shared" "$holder rw o.qed"
    # As with QEMU, the backing file stays writable for others...
    assert_status 0 qemu-io -f raw -c 'write -q 0 512' b.raw
    assert_status 0 "$QED_IO" -f raw -c 'write -q 0 512' b.raw
    # ...and the overlay is not.
    run_both "overlay held by $holder" -c 'read -q 0 512' o.qed
    [ "$status" -eq 1 ] || fail "the overlay held by $holder opened"
    stop_holder o.qed
    # A writer of the backing file does not keep the chain from being read.
    start_holder "$holder" rw b.raw raw
    run_both "overlay over a base held by $holder" -r -c 'read -q 0 512' o.qed
    [ "$status" -eq 0 ] || fail "overlay over a base held by $holder: $(cat q.err)"
    compare_runs . . info --backing-chain o.qed
    [ "$qemu_status" -eq 0 ] || fail "info --backing-chain: $(cat "$T/q.err")"
    stop_holder b.raw
done
report_mismatches

# --- a QED backing file: locked as a read-only open, as QEMU does -------------
qemu-img create -q -f qed bq.qed 4M
"$QED_IMG" create -q -f qed -b bq.qed -F qed oq.qed
for holder in qemu-io qed-io; do
    for hmode in rw ro shared; do
        start_holder "$holder" "$hmode" oq.qed
        [ "$hmode" = shared ] && want=$bytes_qed_shared || want=$bytes_qed_ro
        wait_for_bytes bq.qed "$want" "$holder $hmode oq.qed"
        # A writer of the base is kept out unless the overlay is -U.
        run_both "base of an overlay held $hmode by $holder" -c 'write -q 0 512' bq.qed
        [ "$hmode" = shared ] && want=0 || want=1
        [ "$status" -eq "$want" ] || fail "base under $holder $hmode: qemu-io exited $status"
        stop_holder oq.qed
    done
done
# qemu-img info --backing-chain opens each image alone, so a writer of the
# QED base stops it.
for holder in qemu-io qed-io; do
    start_holder "$holder" rw bq.qed
    compare_runs . . info --backing-chain oq.qed
    [ "$qemu_status" -eq 1 ] || fail "info --backing-chain under a writer of the base"
    stop_holder bq.qed
done
report_mismatches

# --- --locking=off -----------------------------------------------------------
start_holder qemu-io rw a.qed
assert_status 0 "$QED_IO" --locking=off -c 'write -q -P 0x22 0 512' a.qed
assert_status 0 "$QED_IMG" info --locking=off a.qed
run_both "open -o file.locking=off" -c 'open -o file.locking=off a.qed' -c 'read -q 0 512'
[ "$status" -eq 0 ] || fail "open -o file.locking=off: $(cat q.err)"
run_both "file.locking=bad" -c 'open -o file.locking=bad a.qed'
cp a.qed before.qed
assert_status 1 "$QED_IMG" create -q -f qed --locking=auto a.qed 1M
assert_same_bytes before.qed a.qed
assert_status 0 "$QED_IMG" create -q -f qed --locking=off a.qed 1M
cmp -s before.qed a.qed && fail "create --locking=off left the held image unchanged"
stop_holder a.qed
assert_status 1 "$QED_IO" --locking=maybe -c 'read 0 512' a.qed
assert_status 1 "$QED_IMG" info --locking=maybe a.qed

# A holder with --locking=off takes no lock: a QEMU writer gets in.
qemu-img create -q -f raw r.raw 1M
"$QED_IO" -f raw --locking=off -c 'write -q -P 0x5a 0 512' -c 'sleep 100000' r.raw &
HOLDER_PID=$!
on_exit "kill $HOLDER_PID 2>/dev/null"
i=0
until [ "$(od -An -tx1 -N1 r.raw | tr -d ' ')" = 5a ]; do
    i=$((i + 1))
    [ "$i" -lt 400 ] || fail "the --locking=off holder did not write"
    sleep 0.05
done
[ -z "$(locked_bytes r.raw)" ] || fail "--locking=off locked '$(locked_bytes r.raw)'"
assert_status 0 qemu-io -f raw -c 'write -q 512 512' r.raw
stop_holder r.raw

echo "OK"
