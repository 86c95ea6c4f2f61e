#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# fio's nbd engine against `nbdkit qed cache=none`, `qemu-nbd -f qed
# --cache=none` and `qemu-nbd -f raw --cache=none`, each on a fresh 256 GiB
# image (so that nearly every 4 KiB random write allocates, and the run
# prints the fraction that did): workload W8 of bench/run.sh, which it runs.
# (It used to write a 1 GiB image for 10 s, so that after the first second
# its "allocating" phase rewrote clusters already allocated.)
#
#   bench/bench-nbd.sh [BUILD_DIR] [SECONDS]   (default: build-bench, 20; REPS=3)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
W8_SECONDS=${2:-20} exec "$here/run.sh" -B "${1:-build-bench}" W8
