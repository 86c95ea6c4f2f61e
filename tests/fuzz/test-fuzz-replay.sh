#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Replays the fuzz seed corpus, and the inputs that once crashed the
# library, through the fuzz target built without libFuzzer (skipped when
# neither qemu-img nor qed-img can make the seeds).
#
# Usage: test-fuzz-replay.sh FUZZ-REPLAY
set -eu
replay=${1:?usage: test-fuzz-replay.sh FUZZ-REPLAY}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
status=0
sh "$(dirname "$0")/make-seeds.sh" "$dir/seeds" || status=$?
[ "$status" -eq 0 ] || exit "$status"
"$replay" "$dir/seeds"
