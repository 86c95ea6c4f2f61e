#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img's command line: --help and --version for the tool and each command,
# the examples of the help texts run as written, and bad commands, options and
# files fail with exit status 1 and a message that says what and where (in
# qemu-img's words where qemu-img has them).
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img

cd "$T"

# Fails unless the command exits 0 and prints its usage on stdout.
assert_help() {
    "$@" >out.txt 2>err.txt || fail "'$*' exited $?"
    [ ! -s err.txt ] || fail "'$*' wrote to stderr: $(cat err.txt)"
    head -n 1 out.txt | grep -q '^usage: qed-img' || fail "'$*' prints no usage line"
    # man-page layout: fits a terminal
    if awk 'length > 80 { exit 1 }' out.txt; then :; else
        fail "'$*' prints lines longer than 80 columns"
    fi
}

assert_help "$QED_IMG" --help
assert_help "$QED_IMG" -h
for cmd in create info convert measure dd resize map compare snapshot bitmap; do
    grep -q "^  $cmd " out.txt || fail "--help does not list $cmd"
done
for cmd in create info convert measure dd resize map compare snapshot bitmap; do
    assert_help "$QED_IMG" "$cmd" --help
    assert_help "$QED_IMG" "$cmd" -h
    head -n 1 out.txt | grep -q "^usage: qed-img $cmd " || fail "$cmd -h: wrong usage line"
    grep -q '^Examples' out.txt || fail "$cmd --help has no examples"
done

for opt in --version -V; do
    "$QED_IMG" $opt >out.txt || fail "$opt exited $?"
    head -n 1 out.txt | grep -Eq '^qed-img version [0-9]+\.[0-9]+\.[0-9]+$' ||
        fail "$opt: $(head -n 1 out.txt)"
    [ "$(wc -l <out.txt)" -eq 2 ] || fail "$opt prints $(wc -l <out.txt) lines, expected 2"
done

# The examples of each help text, run in order as written (bitmap's all
# fail, as qemu-img's would on a QED image).
qemu-img create -q -f raw base.raw 1M
for cmd in create info convert measure dd resize map compare snapshot; do
    "$QED_IMG" "$cmd" --help | sed -n '/^Examples:/,$p' | sed -n 's/^  qed-img //p' >examples.txt
    [ -s examples.txt ] || fail "$cmd --help: no example found"
    while read -r example; do
        # shellcheck disable=SC2086
        "$QED_IMG" $example >/dev/null || fail "example 'qed-img $example' failed"
    done <examples.txt
done
qemu-img check -q disk.qed || fail "the example image does not pass qemu-img check"

# Usage errors: the message of qemu-img (with its name), then exit status 1.
compare_error() {
    compare_runs . . "$@"
    [ "$qemu_status" -eq 1 ] || fail "'qemu-img $*' exited $qemu_status, expected 1"
}
compare_error
compare_error frobnicate
compare_error --frobnicate
compare_error -x info disk.qed
compare_error info
compare_error info --frobnicate disk.qed
compare_error info disk.qed --output
compare_error info -f
compare_error create -f qed -b
compare_error create -f qed --frobnicate disk.qed

# Files that cannot be used: exit status 1 and the file named.
assert_error_names() {
    want=$1
    shift
    set +e
    "$@" >/dev/null 2>err.txt
    status=$?
    set -e
    [ "$status" -eq 1 ] || fail "'$*' exited $status, expected 1"
    grep -qF "$want" err.txt || fail "'$*' does not name $want: $(cat err.txt)"
    [ "$(grep -c '^qed-img: ' err.txt)" -ge 1 ] || fail "'$*': no 'qed-img:' prefix"
}
mkdir adir
printf 'not an image' >text.txt
assert_error_names missing.qed "$QED_IMG" info missing.qed
assert_error_names adir "$QED_IMG" info adir
assert_error_names text.txt "$QED_IMG" info -f qed text.txt
assert_error_names text.txt "$QED_IMG" info --output=json -f qed text.txt
assert_error_names nodir/x.qed "$QED_IMG" create -f qed nodir/x.qed 1M
assert_error_names adir "$QED_IMG" create -f qed adir 1M
assert_error_names missing.raw "$QED_IMG" create -f qed -b missing.raw -F raw x.qed
assert_error_names x.qed "$QED_IMG" create -f qed -o cluster_size=3k x.qed 1M
[ ! -e missing.qed ] || fail "info created the file it could not open"

# check -p: qemu-img's progress line while the tables are walked, then the
# report; nothing of it with -q, and the JSON stays JSON.
qemu-img create -q -f qed -o cluster_size=4k p.qed 4G
qemu-io -c 'write 0 64k' -c 'write 3G 64k' p.qed >/dev/null
"$QED_IMG" check -p p.qed >out.txt || fail "check -p failed"
tr '\r' '\n' <out.txt >lines.txt
grep -qx '    (0.00/100%)' lines.txt || fail "check -p: no 0% line: $(cat lines.txt)"
grep -qx '    (50.00/100%)' lines.txt || fail "check -p: no 50% line: $(cat lines.txt)"
grep -qx '    (100.00/100%)' lines.txt || fail "check -p: no 100% line: $(cat lines.txt)"
grep -q '^No errors were found on the image.' lines.txt || fail "check -p: no report"
"$QED_IMG" check -p -q p.qed >out.txt || fail "check -p -q failed"
[ ! -s out.txt ] || fail "check -p -q printed: $(cat out.txt)"
"$QED_IMG" check -p --output=json p.qed >out.json || fail "check -p --output=json failed"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' out.json ||
    fail "check -p --output=json is not JSON: $(cat out.json)"

# file: names as qemu-img takes them: a name with a colon is created as
# it is, and info shows it as qemu-img does ("./a:b.qed").
"$QED_IMG" create -q -f qed file:a:b.qed 1M
[ -f a:b.qed ] || fail "create file:a:b.qed did not create a:b.qed"
qemu-img create -q -f qed cb.qed 1M
qemu-img create -q -f qed -b cb.qed -F qed file:c:top.qed 1M
for name in file:a:b.qed file:./a:b.qed a.qed file:c:top.qed; do
    [ -f a.qed ] || qemu-img create -q -f qed a.qed 1M
    for out in human json; do
        qemu-img info --output=$out "$name" >want.txt 2>&1 || true
        "$QED_IMG" info --output=$out "$name" >got.txt 2>&1 || true
        cmp -s want.txt got.txt || fail "info --output=$out $name: $(diff want.txt got.txt)"
    done
done

# commit -p and rebase -p: the progress only rises, and ends at 100%.
assert_rising() {
    tr '\r' '\n' <out.txt | sed -n 's|^    (\([0-9.]*\)/100%)$|\1|p' >pct.txt
    [ "$(tail -n 1 pct.txt)" = 100.00 ] || fail "$1 -p does not end at 100%: $(cat out.txt)"
    sort -n -c pct.txt 2>/dev/null || fail "$1 -p goes backwards: $(tr '\n' ' ' <pct.txt)"
    [ "$(sort -u pct.txt | wc -l)" -ge 3 ] || fail "$1 -p shows no steps: $(cat out.txt)"
}
qemu-img create -q -f raw pb.raw 64M
qemu-img create -q -f qed -b pb.raw -F raw po.qed
qemu-io -c 'write -P 2 0 1M' -c 'write -P 3 20M 1M' -c 'write -P 4 60M 1M' po.qed >/dev/null
cp po.qed po2.qed
"$QED_IMG" commit -p po.qed >out.txt || fail "commit -p failed"
assert_rising commit
"$QED_IMG" rebase -p -b "" po2.qed >out.txt || fail "rebase -p failed"
assert_rising rebase

report_mismatches
