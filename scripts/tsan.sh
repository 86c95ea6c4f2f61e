#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the thread tests under ThreadSanitizer into build-tsan/ and runs
# them: tests/unit/test-stress (many threads on one handle against a model),
# tests/unit/test-api-threads and the others below (test-blk-nbd: the NBD
# connection pool). Any TSan report fails the run.
# The library locks with pthread mutexes, which TSan sees (GLib's GMutex it
# does not), so a clean run means no data race TSan could observe.
#
# Usage: scripts/tsan.sh
set -eu
cd "$(dirname "$0")/.."

build=build-tsan
tests="test-stress test-api-threads test-qed-internals test-crash-parallel test-blk-nbd"

if [ ! -f "$build/build.ninja" ]; then
    meson setup "$build" -Db_sanitize=thread -Db_lundef=false -Dbuildtype=debugoptimized \
        >"$build.setup.log" 2>&1 || { cat "$build.setup.log"; exit 1; }
fi
targets=""
for t in $tests; do
    targets="$targets tests/unit/$t"
done
# shellcheck disable=SC2086
ninja -C "$build" $targets

passed=0
failed=0
for t in $tests; do
    log="$build/$t.tsan.log"
    echo "=== $t under ThreadSanitizer"
    status=0
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 exitcode=66" \
        "$build/tests/unit/$t" >"$log" 2>&1 || status=$?
    warnings=$(grep -c 'WARNING: ThreadSanitizer' "$log" || true)
    grep -E '^(ok|not ok|# [a-z])' "$log" || true
    if [ "$status" -ne 0 ] || [ "$warnings" -ne 0 ]; then
        sed -n '/WARNING: ThreadSanitizer/,/^SUMMARY/p' "$log" | head -60
        tail -5 "$log"
        echo "$t: FAILED (exit $status, $warnings ThreadSanitizer warnings), see $log"
        failed=$((failed + 1))
    else
        echo "$t: no ThreadSanitizer warnings"
        passed=$((passed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
