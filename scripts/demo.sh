#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# The main job, end to end: a QED overlay over a raw base image is served by
# `nbdkit qed` and a QEMU guest boots with it as its disk. The guest makes an
# ext4 filesystem, writes files with checksums, remounts and verifies them;
# then the host checks the image with qed-img and with QEMU's own qemu-img.
# Usage: scripts/demo.sh [BUILD_DIR]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-build}" && pwd)
qed_img="$build/tools/qed-img/qed-img"
plugin="$build/plugins/nbdkit/nbdkit-qed-plugin.so"
guest="$src/scripts/guest"
cache=${XDG_CACHE_HOME:-$HOME/.cache}/libqed/guest
dir=$(mktemp -d "${TMPDIR:-/tmp}/qed-demo.XXXXXX")
nbdkit_pid=""
cleanup() {
    [ -n "$nbdkit_pid" ] && kill "$nbdkit_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() {
    printf '\n$ %s\n' "$*"
    "$@"
}

echo "== Preparing the guest (QEMU, a Debian kernel, a busybox initramfs)"
"$guest/install-guest-deps.sh"
"$guest/get-kernel.sh" "$cache"
"$guest/make-initramfs.sh" "$cache"

cd "$dir"
echo
echo "== A raw base image and a QED overlay over it (in $dir)"
step qemu-img create -q -f raw base.raw 64M
step qemu-io -f raw -c 'write -q -P 0xaa 0 64M' base.raw
step "$qed_img" create -f qed -b base.raw -F raw overlay.qed 4G

echo
echo "== Serving the overlay with nbdkit qed"
printf '\n$ nbdkit -f -U %s/nbd.sock %s overlay.qed &\n' "$dir" "$plugin"
nbdkit -f -U "$dir/nbd.sock" "$plugin" overlay.qed &
nbdkit_pid=$!
i=0
while [ ! -S "$dir/nbd.sock" ]; do
    i=$((i + 1))
    [ "$i" -lt 100 ] || { echo "demo: nbdkit did not start" >&2; exit 1; }
    sleep 0.1
done
step nbdinfo "nbd+unix:///?socket=$dir/nbd.sock"

echo
echo "== Booting the guest from it (qemu-system-x86_64, TCG); its console:"
"$guest/boot.sh" "$cache" "nbd+unix:///?socket=$dir/nbd.sock"

echo
echo "== Shutting the export down and checking the image on the host"
kill "$nbdkit_pid"
wait "$nbdkit_pid" 2>/dev/null || true
nbdkit_pid=""
step "$qed_img" info overlay.qed
step qemu-img check overlay.qed
echo
echo "Demo finished: a guest ran on a QED image served by libqed, and QEMU checks it clean."
