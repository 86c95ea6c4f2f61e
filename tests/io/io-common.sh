# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers shared by the qed-io tests (sourced after functions.sh): the
# output filter and a runner that puts one command list through qemu-io
# and qed-io on separate copies of the same images and diffs what they say.

# qemu-iotests' _filter_qemu_io (timing figures masked, prompts dropped),
# with qed-io's name mapped to qemu-io's and -C statistics masked too.
_io_rate='[0-9/.inf]* [EPTGMKiBbytes]*\/sec'
_io_timing="[0-9]* ops; [0-9/:. sec]* ($_io_rate and [0-9/.inf]* ops\\/sec)"
_io_timing_masked='X ops; XX:XX:XX.X (XXX YYY\/sec and XXX ops\/sec)'
_io_cstats='^\([0-9]*,[0-9]*\),[0-9]*:[0-9]*:[0-9.]*,[0-9.inf]*,[0-9.inf]*$'
io_filter() {
    sed -e 's/^qed-io: /qemu-io: /' \
        -e 's/qed-io> //g' \
        -e 's/qemu-io> //g' \
        -e "s/$_io_timing/$_io_timing_masked/" \
        -e "s/$_io_cstats/\\1,X:XX:XX.XX,XXX,XXX/"
}

# Runs one tool in directory $1 with options from the rest, -c commands
# from file $IO_CMDS (or stdin from it when IO_STDIN=1); writes $1.out,
# $1.err and $1.status next to the directory.
_io_run_tool() {
    dir=$1
    shift
    if [ "${IO_STDIN:-0}" = 1 ]; then
        set +e
        (cd "$dir" && "$@" <"$IO_CMDS" >"$dir.out" 2>"$dir.err")
        echo $? >"$dir.status"
        set -e
        return
    fi
    while IFS= read -r _line; do
        set -- "$@" -c "$_line"
    done <"$IO_CMDS"
    set +e
    (cd "$dir" && "$@" </dev/null >"$dir.out" 2>"$dir.err")
    echo $? >"$dir.status"
    set -e
}

# io_compare NAME [OPTION|FILE]...: the commands on stdin go through
# `qemu-io OPTIONS...` and `qed-io OPTIONS...`, each in a fresh copy of
# $T/pristine; stdout, stderr and exit status must match after io_filter.
io_compare() {
    name=$1
    shift
    IO_CMDS=$T/$name.cmds
    cat >"$IO_CMDS"
    for tool in qemu qed; do
        rm -rf "$T/$name-$tool"
        cp -a "$T/pristine" "$T/$name-$tool"
    done
    _io_run_tool "$T/$name-qemu" qemu-io "$@"
    _io_run_tool "$T/$name-qed" "$QED_IO" "$@"
    ok=1
    for part in out err status; do
        io_filter <"$T/$name-qemu.$part" >"$T/$name-qemu.$part.f"
        io_filter <"$T/$name-qed.$part" >"$T/$name-qed.$part.f"
        if ! diff -u "$T/$name-qemu.$part.f" "$T/$name-qed.$part.f" \
            >"$T/$name.$part.diff"; then
            echo "--- case $name: $part differs (qemu-io -, qed-io +):" >&2
            cat "$T/$name.$part.diff" >&2
            ok=0
        fi
    done
    if [ "$ok" = 1 ]; then
        echo "ok: $name"
    else
        IO_FAILED="$IO_FAILED $name"
    fi
}
IO_FAILED=""
