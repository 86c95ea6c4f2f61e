#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The man pages: every POD source passes podchecker without an error or a
# warning and pod2man built its page; man/qed-img.pod has an =item for each
# command `qed-img --help` lists and names each option that a command's
# --help lists; man/qed-io.pod has an =item for each command of qed-io's
# `help` and names each option of `qed-io --help`. The check is first shown
# to catch a page that lacks a command and one that lacks an option.
. "$TESTS_DIR/functions.sh"
requires podchecker

# The commands of `qed-img --help`: the first word of each line of its
# "Commands:" list.
img_commands() {
    "$QED_IMG" --help | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'
}

# The commands of qed-io's `help`: the first word of each line up to the
# blank line before "Use 'help commandname'".
io_commands() {
    "$QED_IO" -c help | awk '/^$/ {exit} {print $1}'
}

# The options (-x and --long) at the start of the lines of an "Options"
# list: lines that begin with two spaces and a dash. Words that only start
# with a dash (a wrapped synopsis line's "--disable)...", a wrapped
# sentence's "-O's") are not options.
options_of() {
    grep -E '^  +-' | sed -E 's/^ +//; s/  .*//' | tr ',' '\n' |
        sed -E 's/^ +//; s/[ =].*//' | grep -xE -e '--?[A-Za-z0-9][A-Za-z0-9-]*' | sort -u
}

# check_page POD COMMANDS_FILE OPTIONS_FILE: every command is an "=item B<cmd>"
# of the page's COMMANDS section and every option is written B<option> in
# the page (followed by > or =). Prints what is missing; fails when anything is.
check_page() {
    pod=$1
    missing=0
    awk '/^=head1 COMMANDS/ {on = 1; next} /^=head1/ {on = 0} on' "$pod" >"$T/section"
    [ -s "$T/section" ] || { echo "$pod: no COMMANDS section"; return 1; }
    while read -r cmd; do
        if ! grep -q "^=item B<$cmd>" "$T/section"; then
            echo "$pod: the command '$cmd' has no =item in COMMANDS"
            missing=$((missing + 1))
        fi
    done <"$2"
    while read -r opt; do
        if ! grep -qE -e "B<${opt}[>=]" "$pod"; then
            echo "$pod: the option '$opt' is not described (no B<$opt>)"
            missing=$((missing + 1))
        fi
    done <"$3"
    [ "$missing" -eq 0 ]
}

img_commands >"$T/img-commands"
io_commands >"$T/io-commands"
[ "$(wc -l <"$T/img-commands")" -ge 3 ] || fail "no commands in qed-img --help"
[ "$(wc -l <"$T/io-commands")" -ge 20 ] || fail "no commands in qed-io's help"
grep -qx check "$T/img-commands" || fail "qed-img --help does not list check"
grep -qx aio_write "$T/io-commands" || fail "qed-io's help does not list aio_write"

{
    "$QED_IMG" --help | options_of
    while read -r cmd; do
        "$QED_IMG" "$cmd" --help | options_of
    done <"$T/img-commands"
} | sort -u >"$T/img-options"
"$QED_IO" --help | options_of >"$T/io-options"
grep -qx -- --backing-chain "$T/img-options" || fail "no options found in qed-img's help"
grep -qx -- --read-only "$T/io-options" || fail "no options found in qed-io --help"

# The check catches a missing command and a missing option.
sed '/^=item B<check>/d' "$SRCDIR/man/qed-img.pod" >"$T/no-check.pod"
assert_status 1 check_page "$T/no-check.pod" "$T/img-commands" /dev/null >"$T/out"
grep -q "'check' has no =item" "$T/out" || fail "a page without check passed"
sed 's/B<--backing-chain>/--backing-chain/g' "$SRCDIR/man/qed-img.pod" >"$T/no-opt.pod"
assert_status 1 check_page "$T/no-opt.pod" /dev/null "$T/img-options" >"$T/out"
grep -q "'--backing-chain' is not described" "$T/out" || fail "a page without an option passed"

status=0
check_page "$SRCDIR/man/qed-img.pod" "$T/img-commands" "$T/img-options" || status=1
check_page "$SRCDIR/man/qed-io.pod" "$T/io-commands" "$T/io-options" || status=1
[ "$status" -eq 0 ] || fail "the man pages above do not describe every command and option"

# POD syntax: no error, no warning.
for pod in "$SRCDIR"/man/*.pod "$SRCDIR"/plugins/nbdkit/*.pod; do
    if ! podchecker "$pod" >"$T/podcheck" 2>&1 ||
        grep -q WARNING "$T/podcheck"; then
        cat "$T/podcheck"
        fail "$pod: podchecker found problems"
    fi
done

# The pages pod2man built (when it is there, as meson builds them then).
if command -v pod2man >/dev/null 2>&1; then
    for page in qed-img qed-io; do
        grep -q "^\.TH $page 1 " "$BUILDDIR/man/$page.1" ||
            fail "$BUILDDIR/man/$page.1 was not built"
    done
fi
echo "ok: man pages"
