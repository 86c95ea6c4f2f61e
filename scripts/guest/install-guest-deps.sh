#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs the Debian packages the guest-boot test needs: QEMU's x86 system
# emulator, a static busybox and e2fsprogs for the guest's initramfs, and the
# host tools that inspect the result. Idempotent and quiet when all is there.
exec sh "$(dirname "$0")/../install-deps.sh" qemu-system-x86 busybox-static e2fsprogs cpio \
    gzip kmod qemu-utils nbdkit coreutils
