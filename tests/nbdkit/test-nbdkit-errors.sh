#!/bin/sh
# nbdkit qed refuses to start on a corrupt, missing or unopenable image with
# an error line naming the file, leaving the file unchanged; bad parameters
# are refused too.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img

cd "$T"
"$QED_IMG" create -q -f qed disk.qed 1M

# expect_refusal TEXT ARGS...: nbdkit must exit nonzero and say TEXT.
expect_refusal() {
    text=$1
    shift
    set +e
    # shellcheck disable=SC2086
    timeout 10 env ${NBDKIT_PRELOAD:+LD_PRELOAD=$NBDKIT_PRELOAD ASAN_OPTIONS=detect_leaks=0} \
        nbdkit -f -U "$T/never.sock" "$NBDKIT_QED_PLUGIN" "$@" >out.txt 2>&1
    status=$?
    set -e
    [ "$status" -ne 0 ] || fail "nbdkit started with $*"
    grep -q "$text" out.txt || fail "no '$text' in: $(cat out.txt)"
    # With the ASan runtime preloaded into nbdkit, its exit after a startup
    # error deadlocks in libp11-kit's destructor (glibc's locale lock), after
    # the error was printed: that hang is nbdkit's and the preload's, not ours.
    if [ "$status" -eq 124 ] && [ -z "${NBDKIT_PRELOAD:-}" ]; then
        fail "nbdkit hung after refusing $*"
    fi
}

cp disk.qed bad.qed
printf '\377\377\377\377' | dd of=bad.qed bs=1 seek=8 conv=notrunc 2>/dev/null
cp bad.qed bad.orig
expect_refusal "bad.qed.*QED table size is invalid" bad.qed
cmp bad.qed bad.orig || fail "the corrupt image was modified"

expect_refusal "missing.qed" missing.qed
"$QED_IMG" create -q -u -f qed -b gone.raw -F raw orphan.qed 1M
expect_refusal "gone.raw" orphan.qed
expect_refusal "cache" disk.qed cache=sometimes
expect_refusal "readonly" disk.qed readonly=perhaps
expect_refusal "unknown parameter" disk.qed colour=blue
expect_refusal "file=" 

# backing=false serves the orphan, reading zeros where the backing would be.
serve_qed orphan.qed backing=false readonly=true
qemu-io -f raw -r -c 'read -q -P 0 0 1M' "$URI" | grep -q failed && fail "nonzero data"
stop_nbdkit
