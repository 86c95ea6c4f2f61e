#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Licences: every tracked source, script, build and test file starts with its
# SPDX-License-Identifier line (scripts/check-spdx.sh), the licence texts are
# in the tree, and libqed.pc names the library's licence. The checker is
# first shown to catch a file without the line, one with the wrong licence
# for its directory, and a script whose line is not right after its #! line.
. "$TESTS_DIR/functions.sh"

check=$SRCDIR/scripts/check-spdx.sh

# A scratch tree (not a git checkout: the checker lists files with find).
mkdir -p "$T/tree/src" "$T/tree/plugins/nbdkit" "$T/tree/docs"
printf '/* SPDX-License-Identifier: LGPL-2.1-or-later */\nint x;\n' >"$T/tree/src/good.c"
printf '#!/bin/sh\n# SPDX-License-Identifier: LGPL-2.1-or-later\ntrue\n' >"$T/tree/good.sh"
printf '/* SPDX-License-Identifier: BSD-3-Clause */\n' >"$T/tree/plugins/nbdkit/good.c"
printf '# notes without a licence line: not a source file\n' >"$T/tree/docs/notes.md"
sh "$check" "$T/tree" >"$T/out" || fail "check-spdx refused a tree where every file has its line"

cp -r "$T/tree" "$T/bad"
printf '/*\n * no licence line\n */\nint y;\n' >"$T/bad/src/new.c"
printf '/* SPDX-License-Identifier: LGPL-2.1-or-later */\n' >"$T/bad/plugins/nbdkit/wrong.c"
printf '#!/bin/sh\ntrue\n# SPDX-License-Identifier: LGPL-2.1-or-later\n' >"$T/bad/late"
printf "# SPDX-License-Identifier: LGPL-2.1-or-later\ntest('x', find_program('x'))\n" \
    >"$T/bad/meson.build"
assert_status 1 sh "$check" "$T/bad" >"$T/out"
cat "$T/out"
for f in src/new.c:1 plugins/nbdkit/wrong.c:1 late:2; do
    grep -q "^$f: expected" "$T/out" || fail "check-spdx did not name $f"
done
[ "$(grep -c ': expected' "$T/out")" -eq 3 ] || fail "check-spdx named files that are fine"

# The tree itself.
sh "$check" "$SRCDIR" || fail "files above lack their SPDX-License-Identifier line"

# The licence texts and the pkg-config file.
if ! grep -q 'GNU LESSER GENERAL PUBLIC LICENSE' "$SRCDIR/LICENSE" ||
    ! grep -q 'Version 2.1, February 1999' "$SRCDIR/LICENSE"; then
    fail "LICENSE is not the LGPL-2.1 text"
fi
grep -q 'Redistribution and use in source and binary forms' "$SRCDIR/plugins/nbdkit/LICENSE" ||
    fail "plugins/nbdkit/LICENSE is not the BSD-3-Clause text"
pc=$BUILDDIR/meson-private/libqed.pc
[ -f "$pc" ] || fail "$pc was not generated"
grep -qx 'license=LGPL-2.1-or-later' "$pc" || fail "$pc does not name the licence"
echo "ok: licences"
