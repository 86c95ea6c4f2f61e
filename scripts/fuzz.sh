#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Fuzzes the QED driver: builds tests/fuzz/fuzz-image.c and the library with
# clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer into
# build-fuzz/, makes the seed corpus (tests/fuzz/make-seeds.sh) and runs for
# SECONDS (default 60). Prints the number of executions; fails on a crash,
# leak, hang or unbounded allocation, leaving the input in build-fuzz/crashes/.
# libFuzzer comes with clang's runtime (Debian: libclang-rt-14-dev).
#
# Usage: scripts/fuzz.sh [SECONDS]
set -eu
cd "$(dirname "$0")/.."

secs=${1:-60}
out=build-fuzz
cc=${CLANG:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: $cc not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 1
fi
mkdir -p "$out/crashes" "$out/corpus"
echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' >"$out/probe.c"
if ! "$cc" -fsanitize=fuzzer "$out/probe.c" -o "$out/probe" 2>/dev/null; then
    echo "fuzz: $cc cannot link libFuzzer (apt-get install libclang-rt-14-dev)" >&2
    exit 1
fi

echo "fuzz: building $out/fuzz-image"
# shellcheck disable=SC2046
"$cc" -g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE -DG_LOG_DOMAIN='"libqed"' \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Iinclude -Isrc $(pkg-config --cflags glib-2.0) \
    src/*.c src/blk/*.c src/qed/*.c tests/fuzz/fuzz-image.c \
    -o "$out/fuzz-image" $(pkg-config --libs glib-2.0) -lpthread

rm -rf "$out/seeds"
sh tests/fuzz/make-seeds.sh "$out/seeds"

# Inputs stay small (the seeds are at most 132 KiB); a single allocation
# over 256 MiB or an input taking over 10 s is a bug in the library.
echo "fuzz: running for $secs s"
status=0
ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$out/fuzz-image" -max_total_time="$secs" -max_len=196608 -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb=256 -print_final_stats=1 \
    -artifact_prefix="$out/crashes/" "$out/corpus" "$out/seeds" >"$out/fuzz.log" 2>&1 ||
    status=$?

execs=$(awk '/stat::number_of_executed_units:/ {print $2}' "$out/fuzz.log")
echo "fuzz: ${execs:-0} executions in $secs s, corpus $(ls "$out/corpus" | wc -l) inputs"
if [ "$status" -ne 0 ]; then
    grep -E 'ERROR|WARNING|SUMMARY|Test unit written|ERROR:' "$out/fuzz.log" | head -20 >&2
    echo "fuzz: FAILED (exit $status), see $out/fuzz.log and $out/crashes/" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
echo "1 passed, 0 failed"
