#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the Debian packages that building and testing need, or the ones
# named as arguments (scripts/guest/install-guest-deps.sh names its own).
# Idempotent and quiet when everything is already there.
set -e

packages="meson ninja-build pkg-config gcc g++ libglib2.0-dev qemu-utils
          nbdkit nbdkit-plugin-dev libnbd-bin python3 clang libclang-rt-14-dev
          clang-format e2fsprogs perl fio strace time libnbd-dev nginx-light"
[ $# -eq 0 ] || packages="$*"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "$(basename "$0"): installing$missing" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
