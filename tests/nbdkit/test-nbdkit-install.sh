#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# meson install --prefix=P puts everything under P: the nbdkit plugin and
# filter go to P/LIBDIR/nbdkit/plugins and .../filters (nbdkit's layout),
# not into the system's nbdkit directories; with nbdkit's own prefix they
# go where nbdkit finds them by name (pkg-config plugindir and filterdir);
# -Dnbdkit_plugindir/-Dnbdkit_filterdir choose. Checked on the install plan
# of a scratch configuration (meson introspect --installed), without a build.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires meson pkg-config python3
: "${SRCDIR:?run through meson test}"
cd "$T"

# installed BUILDDIR: the install plan, one "built-file installed-path" a line.
installed() {
    meson introspect --installed "$1" | python3 -c '
import json, sys
for src, dst in json.load(sys.stdin).items():
    print(src, dst)
'
}

# installed_path BUILDDIR NAME: where NAME is installed.
installed_path() {
    installed "$1" | awk -v n="/$2" 'substr($2, length($2) - length(n) + 1) == n { print $2 }'
}

meson setup "$T/build" "$SRCDIR" --prefix="$T/prefix" >setup.txt 2>&1 ||
    fail "meson setup: $(cat setup.txt)"
libdir=$(meson introspect --buildoptions "$T/build" | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))
')
installed "$T/build" >plan.txt
[ -s plan.txt ] || fail "empty install plan"
while read -r src dst; do
    case $dst in
    "$T/prefix"/*) ;;
    *) fail "$src would be installed outside the prefix, to $dst" ;;
    esac
done <plan.txt
[ "$(installed_path "$T/build" nbdkit-qed-plugin.so)" = \
    "$T/prefix/$libdir/nbdkit/plugins/nbdkit-qed-plugin.so" ] ||
    fail "plugin: $(installed_path "$T/build" nbdkit-qed-plugin.so)"
[ "$(installed_path "$T/build" nbdkit-qed-filter.so)" = \
    "$T/prefix/$libdir/nbdkit/filters/nbdkit-qed-filter.so" ] ||
    fail "filter: $(installed_path "$T/build" nbdkit-qed-filter.so)"

# The options choose.
meson setup --reconfigure "$T/build" "$SRCDIR" -Dnbdkit_plugindir="$T/p" \
    -Dnbdkit_filterdir="$T/f" >configure.txt 2>&1 || fail "meson setup: $(cat configure.txt)"
[ "$(installed_path "$T/build" nbdkit-qed-plugin.so)" = "$T/p/nbdkit-qed-plugin.so" ] ||
    fail "-Dnbdkit_plugindir: $(installed_path "$T/build" nbdkit-qed-plugin.so)"
[ "$(installed_path "$T/build" nbdkit-qed-filter.so)" = "$T/f/nbdkit-qed-filter.so" ] ||
    fail "-Dnbdkit_filterdir: $(installed_path "$T/build" nbdkit-qed-filter.so)"

# nbdkit's own prefix: nbdkit's directories, where `nbdkit qed` looks.
meson setup --reconfigure "$T/build" "$SRCDIR" \
    -Dprefix="$(pkg-config --variable=prefix nbdkit)" -Dnbdkit_plugindir= \
    -Dnbdkit_filterdir= >configure.txt 2>&1 || fail "meson setup: $(cat configure.txt)"
[ "$(installed_path "$T/build" nbdkit-qed-plugin.so)" = \
    "$(pkg-config --variable=plugindir nbdkit)/nbdkit-qed-plugin.so" ] ||
    fail "nbdkit's prefix: $(installed_path "$T/build" nbdkit-qed-plugin.so)"
[ "$(installed_path "$T/build" nbdkit-qed-filter.so)" = \
    "$(pkg-config --variable=filterdir nbdkit)/nbdkit-qed-filter.so" ] ||
    fail "nbdkit's prefix: $(installed_path "$T/build" nbdkit-qed-filter.so)"
