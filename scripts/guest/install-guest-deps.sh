#!/bin/sh
# Installs the Debian packages the guest-boot test needs: QEMU's x86 system
# emulator, a static busybox and e2fsprogs for the guest's initramfs, and the
# host tools that inspect the result. Idempotent and quiet when all is there.
set -e

packages="qemu-system-x86 busybox-static e2fsprogs cpio gzip kmod
          qemu-utils nbdkit coreutils"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-guest-deps: installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
