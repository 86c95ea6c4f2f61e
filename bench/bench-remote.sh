#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Sequential read of a 2 GiB golden raw image (random data) served by
# `nbdkit file` over NBD, on a Unix socket and on TCP localhost, through an
# empty local QED overlay whose backing file is that NBD URI: qed-img
# convert against qemu-img convert of the same overlay, `nbdkit qed
# backing-remote=true` against `qemu-nbd -f qed` (each read by nbdcopy to
# null:), and nbdcopy from the golden server itself (the ceiling). Workload
# R1 of bench/run.sh, which it runs (docs/performance.md).
#
#   bench/bench-remote.sh [BUILD_DIR]   (default: build-bench; REPS=3, QUICK=1: 256 MiB)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/run.sh" -B "${1:-build-bench}" R1
