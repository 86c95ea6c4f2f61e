#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Every source, script, build and test file starts with its licence: an
# `SPDX-License-Identifier:` line as its first line (its second after a `#!`
# line). The nbdkit plugin and filter (plugins/nbdkit/) are BSD-3-Clause,
# everything else LGPL-2.1-or-later. Lists the files that lack the line and
# exits 1; exits 0 when every file has it.
#
# Usage: scripts/check-spdx.sh [SOURCE_DIR]   (default: this script's tree)
# The files are those git tracks when SOURCE_DIR is a git checkout, otherwise
# every file under it outside build*/ directories.
set -eu

src=${1:-"$(dirname "$0")/.."}
cd "$src"

if command -v git >/dev/null 2>&1 && git rev-parse --is-inside-work-tree >/dev/null 2>&1 &&
    [ "$(git rev-parse --show-prefix)" = "" ]; then
    list() { git ls-files; }
else
    list() { find . -path './build*' -prune -o -path './.git' -prune -o -type f -print |
        sed 's|^\./||' | LC_ALL=C sort; }
fi

bad=0
checked=0
tab=$(printf '\t')
list | {
    while IFS= read -r f; do
        [ -f "$f" ] || continue
        case "$f" in
            *.c | *.h | *.cpp | *.sh | *.py | *.pod | *.map | meson.build | */meson.build | \
                meson_options.txt | Makefile | */Makefile) ;;
            *)
                # Scripts without a suffix (.ci/run) are known by their #! line.
                [ "$(head -c 2 "$f")" = "#!" ] || continue
                ;;
        esac
        case "$f" in
            plugins/nbdkit/*) id=BSD-3-Clause ;;
            *) id=LGPL-2.1-or-later ;;
        esac
        line=1
        [ "$(head -c 2 "$f")" = "#!" ] && line=2
        text=$(sed -n "${line}p" "$f")
        checked=$((checked + 1))
        case "$text" in
            "/* SPDX-License-Identifier: $id */" | "// SPDX-License-Identifier: $id" | \
                "# SPDX-License-Identifier: $id" | "=for comment SPDX-License-Identifier: $id") ;;
            *)
                echo "$f:$line: expected an SPDX-License-Identifier: $id line, found:$tab$text"
                bad=$((bad + 1))
                ;;
        esac
    done
    if [ "$bad" -ne 0 ]; then
        echo "check-spdx: $bad of $checked files lack their SPDX-License-Identifier line" >&2
        exit 1
    fi
    echo "check-spdx: all $checked files carry their SPDX-License-Identifier line"
}
