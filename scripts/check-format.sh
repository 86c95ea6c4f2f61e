#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Reports the C sources that clang-format (with the tree's .clang-format)
# would change, and how many lines in each; exits 1 when there is any, 0
# when every file is formatted. With -d it also prints the changes as a diff.
# clang-format 14 (Debian's clang-format package) is the reference: other
# versions may format some constructs differently.
#
# Usage: scripts/check-format.sh [-d]
# To format the tree:  git ls-files '*.c' '*.h' '*.cpp' | xargs clang-format -i
set -eu
cd "$(dirname "$0")/.."

show_diff=false
[ "${1:-}" = "-d" ] && show_diff=true
cf=${CLANG_FORMAT:-clang-format}

if ! command -v "$cf" >/dev/null 2>&1; then
    echo "check-format: $cf not found (apt-get install clang-format)" >&2
    exit 1
fi

if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files '*.c' '*.h' '*.cpp')
else
    files=$(find . -path './build*' -prune -o \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) \
        -type f -print | sed 's|^\./||' | LC_ALL=C sort)
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
bad=0
removed=0
added=0
total=0
for f in $files; do
    [ -f "$f" ] || continue
    total=$((total + 1))
    "$cf" --style=file "$f" | diff -u --label "a/$f" --label "b/$f" "$f" - >"$out" || true
    [ -s "$out" ] || continue
    # Past the two header lines, count the lines the diff takes out and puts in.
    counts=$(awk 'NR > 2 && /^-/ {r++} NR > 2 && /^\+/ {a++} END {print r + 0, a + 0}' "$out")
    r=${counts% *}
    a=${counts#* }
    echo "$f: -$r +$a lines"
    if $show_diff; then
        cat "$out"
    fi
    bad=$((bad + 1))
    removed=$((removed + r))
    added=$((added + a))
done
if [ "$bad" -ne 0 ]; then
    echo "check-format: $bad of $total files are not formatted (-$removed +$added lines);" \
        "scripts/check-format.sh -d shows the changes" >&2
    exit 1
fi
echo "check-format: all $total files are formatted"
