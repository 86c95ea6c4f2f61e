# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the shell tests (sourced, not run).
# Each test: `. "$TESTS_DIR/functions.sh"`, then `requires qemu-img`, then
# work in "$T", a fresh directory removed on exit.
set -eu

: "${QED_IMG:?run through meson test}"
: "${QED_IO:?run through meson test}"

# Skip the test (exit 77) unless every named command exists.
requires() {
    for cmd in "$@"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            echo "SKIP: $cmd is not installed" >&2
            exit 77
        fi
    done
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

_cleanup_cmds=""
# Run a command when the test exits, whatever the exit path.
on_exit() {
    _cleanup_cmds="$*; $_cleanup_cmds"
}
_run_cleanup() {
    status=$?
    eval "$_cleanup_cmds" || true
    rm -rf "$T"
    exit "$status"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/qedtest.XXXXXX")
trap _run_cleanup EXIT INT TERM

# Fail unless two files are byte-identical, showing where they differ.
assert_same_bytes() {
    if ! cmp "$1" "$2"; then
        fail "$1 and $2 differ"
    fi
}

# Fail unless the command's exit status is the given number.
assert_status() {
    want=$1
    shift
    set +e
    "$@"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}

# nbdkit, with the sanitizer runtime preloaded when the plugin under test
# was built with one (nbdkit itself is not, so its leaks are not ours).
# NBDKIT_AS, when set, is a command prefix nbdkit runs under (setpriv ...).
run_nbdkit() {
    # shellcheck disable=SC2086
    if [ -n "${NBDKIT_PRELOAD:-}" ]; then
        LD_PRELOAD=$NBDKIT_PRELOAD ASAN_OPTIONS=detect_leaks=0 ${NBDKIT_AS:-} nbdkit "$@"
    else
        ${NBDKIT_AS:-} nbdkit "$@"
    fi
}

# Starts nbdkit in the foreground of a background job, serving on the Unix
# socket $1 with the remaining arguments; it is stopped when the test exits.
# Sets NBDKIT_PID. Fails if the socket does not appear within 20 seconds.
start_nbdkit() {
    _sock=$1
    shift
    rm -f "$_sock"
    # Not through run_nbdkit: $! must be nbdkit itself, so that stop_nbdkit
    # can wait for it to close the image (a NBDKIT_AS prefix execs it).
    # shellcheck disable=SC2086
    if [ -n "${NBDKIT_PRELOAD:-}" ]; then
        LD_PRELOAD=$NBDKIT_PRELOAD ASAN_OPTIONS=detect_leaks=0 \
            ${NBDKIT_AS:-} nbdkit --exit-with-parent -f -U "$_sock" "$@" &
    else
        ${NBDKIT_AS:-} nbdkit --exit-with-parent -f -U "$_sock" "$@" &
    fi
    NBDKIT_PID=$!
    on_exit "kill $NBDKIT_PID 2>/dev/null"
    _i=0
    while [ ! -S "$_sock" ]; do
        if ! kill -0 "$NBDKIT_PID" 2>/dev/null; then
            fail "nbdkit $* exited before serving"
        fi
        _i=$((_i + 1))
        [ "$_i" -lt 200 ] || fail "nbdkit $* did not create $_sock"
        sleep 0.1
    done
}

# Is process $1 running (not gone, not a zombie waiting for `wait`)?
alive() {
    _state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$_state" ] && [ "$_state" != Z ]
}

# Stops the nbdkit started by start_nbdkit and waits until it has closed the
# image (so that the file is flushed and marked clean). With the ASan
# runtime preloaded into nbdkit, its exit can deadlock in libp11-kit's
# destructor (glibc's setlocale lock, its reader count underflowed) once it
# has printed an error, after the plugin was unloaded: that hang is nbdkit's
# and the preload's, so there it is killed after 10 seconds.
stop_nbdkit() {
    kill "$NBDKIT_PID" 2>/dev/null || true
    if [ -n "${NBDKIT_PRELOAD:-}" ]; then
        _i=0
        while alive "$NBDKIT_PID" && [ "$_i" -lt 100 ]; do
            _i=$((_i + 1))
            sleep 0.1
        done
        kill -9 "$NBDKIT_PID" 2>/dev/null || true
    fi
    wait "$NBDKIT_PID" 2>/dev/null || true
}
