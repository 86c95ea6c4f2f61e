#!/bin/sh
# The main job, end to end: a QED overlay over a raw base image, written and
# read through libqed's tools, inspected by qed-img, then checked and compared
# by QEMU's own qemu-img against a raw file that qemu-io wrote the same way.
set -eu
build=$(cd "${1:-build}" && pwd)
qed_img="$build/tools/qed-img/qed-img"
qed_io="$build/tools/qed-io/qed-io"
dir=$(mktemp -d "${TMPDIR:-/tmp}/qed-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT

step() {
    printf '\n$ %s\n' "$*"
    "$@"
}

cd "$dir"
echo "Working in $dir"
step qemu-img create -q -f raw base.raw 64M
step qemu-io -f raw -c 'write -q -P 0xaa 0 64M' base.raw
step "$qed_img" create -f qed -b base.raw -F raw overlay.qed 128M
step "$qed_io" -c 'write -P 0x55 1M 3M' -c 'write -z 8M 64k' -c 'write -P 0x11 100M 4k' \
    overlay.qed
step "$qed_io" -r -c 'read -P 0xaa 0 1M' -c 'read -P 0x55 1M 3M' -c 'read -P 0 8M 64k' \
    -c 'read -P 0xaa 9M 1M' -c 'read -P 0 64M 36M' -c 'read -P 0x11 100M 4k' -c map \
    overlay.qed
step "$qed_img" info overlay.qed
step qemu-img check overlay.qed

# The same writes through QEMU onto a raw copy: the two must read the same.
cp base.raw reference.raw
qemu-img resize -q -f raw reference.raw 128M
qemu-io -f raw -c 'write -q -P 0x55 1M 3M' -c 'write -q -z 8M 64k' \
    -c 'write -q -P 0x11 100M 4k' reference.raw
step qemu-img compare -f qed -F raw overlay.qed reference.raw
echo
echo "Demo finished: QEMU checks and reads the image libqed wrote."
