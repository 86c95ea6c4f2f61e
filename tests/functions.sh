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
