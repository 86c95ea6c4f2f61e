#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# An nbdkit sh plugin that serves $PROBE_DIR/disk.qed and notices when two
# of its calls overlap: each read, write and flush holds the directory
# $PROBE_DIR/busy (mkdir is atomic) for a while, and a call that finds it
# taken appends its method to $PROBE_DIR/overlaps. The thread model is
# $PROBE_MODEL. Used by test-nbdkit-filter-parallel.sh and -serial.sh.
img=$PROBE_DIR/disk.qed
case "$1" in
thread_model)
    echo "$PROBE_MODEL"
    ;;
get_size)
    stat -c %s "$img"
    ;;
can_write | can_flush)
    exit 0
    ;;
pread | pwrite | flush)
    mine=
    if mkdir "$PROBE_DIR/busy" 2>/dev/null; then
        mine=1
    else
        echo "$1" >>"$PROBE_DIR/overlaps"
    fi
    case "$1" in
    pread)
        dd if="$img" iflag=skip_bytes,count_bytes skip="$4" count="$3" bs=64k status=none
        ;;
    pwrite)
        dd of="$img" oflag=seek_bytes conv=notrunc seek="$4" bs=64k status=none
        ;;
    esac
    sleep 0.01
    [ -z "$mine" ] || rmdir "$PROBE_DIR/busy"
    ;;
*)
    exit 2 # not implemented: nbdkit's default
    ;;
esac
