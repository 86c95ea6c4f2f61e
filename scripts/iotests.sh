#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs QEMU's own iotests for QED (tests/qemu-iotests in a QEMU 7.2 source
# tree) with qed-img and qed-io in place of qemu-img and qemu-io.
#
#   scripts/iotests.sh QEMU_SOURCE_DIR [BUILD_DIR] [TEST...]
#
# Without TEST, every test that runs for -qed. QEMU_PROG, QEMU_NBD_PROG and
# QSD_PROG stay QEMU's own (from PATH); the tests that start them run them
# on images qed-img made. Not part of `make check`: it needs QEMU's source
# (e.g. `apt-get source qemu`), and the tests that use commands qed-img does
# not have yet fail. The summary is check's own; the output of each failed
# test is kept in the scratch directory named at the end.
set -eu

src=${1:?usage: scripts/iotests.sh QEMU_SOURCE_DIR [BUILD_DIR] [TEST...]}
shift
build=build
if [ $# -gt 0 ] && [ -d "$1" ]; then
    build=$1
    shift
fi
build=$(cd "$build" && pwd)
iotests=$(cd "$src/tests/qemu-iotests" && pwd)
[ -x "$build/tools/qed-img/qed-img" ] || { echo "no qed-img in $build" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/qed-iotests.XXXXXX")
mkdir "$work/bin" "$work/scratch"
# qed-io names itself after argv[0], so a link called qemu-io prints
# "qemu-io:" as the expected outputs want; qed-img's name is fixed, so its
# wrapper maps it on stderr.
ln -s "$build/tools/qed-io/qed-io" "$work/bin/qemu-io"
cat >"$work/bin/qemu-img" <<EOF
#!/bin/bash
exec "$build/tools/qed-img/qed-img" "\$@" 2> >(sed -u 's/^qed-img: /qemu-img: /; s/qed-img --help/qemu-img --help/' >&2)
EOF
chmod +x "$work/bin/qemu-img"

cd "$iotests"
set +e
QEMU_IMG_PROG=$work/bin/qemu-img QEMU_IO_PROG=$work/bin/qemu-io \
    QEMU_PROG=${QEMU_PROG:-$(command -v qemu-system-x86_64)} \
    QEMU_NBD_PROG=${QEMU_NBD_PROG:-$(command -v qemu-nbd)} \
    QSD_PROG=${QSD_PROG:-$(command -v qemu-storage-daemon)} \
    TEST_DIR=$work/scratch SOCK_DIR=$work/scratch \
    python3 ./check -qed "$@"
status=$?
set -e
echo "scratch directory (kept): $work"
exit $status
