#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A raw image opened without a format: qed-io warns in qemu-io's words, and
# both tools refuse a write that would turn the first sector into another
# format's header (qemu-io's raw driver rule), leaving the file unchanged,
# while ordinary writes into the first sector go through and -f raw lifts
# the restriction. qed-img check -r warns where qemu-img check -r does.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/io/io-common.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io python3 cmp

P=$T/pristine
mkdir "$P"
qemu-img create -q -f raw "$P/b.raw" 1M
qemu-io -f raw -c 'write -q -P 0x5a 0 1M' "$P/b.raw"
python3 - "$P" <<'EOF'
import struct, sys
d = sys.argv[1]
def put(name, data):
    with open(d + '/' + name, 'wb') as f:
        f.write(data.ljust(512, b'\0'))
put('qcow2.sector', b'QFI\xfb' + struct.pack('>I', 3))
put('vmdk.sector', b'# Disk DescriptorFile\nversion=1\n')
put('qed.sector', b'QED\0')
put('data.sector', bytes(range(256)) * 2)
with open(d + '/magic.bin', 'wb') as f:
    f.write(b'QFI\xfb')
with open(d + '/version.bin', 'wb') as f:
    f.write(struct.pack('>I', 3))
EOF

# The warning, the output of accepted writes and the bytes they leave.
check_same() {
    name=$1
    shift
    io_compare "$name" "$@"
    cmp "$T/$name-qemu/b.raw" "$T/$name-qed/b.raw" ||
        IO_FAILED="$IO_FAILED $name(bytes)"
}

check_same warning b.raw <<'EOF'
write -P 0x11 0 512
EOF
check_same readonly-no-warning -r b.raw <<'EOF'
read -P 0x5a 0 512
EOF
check_same ordinary-writes b.raw <<'EOF'
write -s data.sector 0 512
write -P 0x41 3 7
write -z 0 4096
write -P 0x42 0 64k
read -P 0x42 0 64k
EOF
check_same header-past-first-sector b.raw <<'EOF'
write -s qcow2.sector 512 512
EOF
check_same named-raw -f raw b.raw <<'EOF'
write -s qcow2.sector 0 512
EOF
check_same open-command <<'EOF'
open b.raw
write -P 0x11 0 512
EOF

# Refused writes: the same stdout and exit status, qemu-io's stderr (qed-io
# adds the library's reason in one more line), and the file unchanged.
check_refused() {
    name=$1
    cmds=$T/$name.cmds
    cat >"$cmds"
    for tool in qemu qed; do
        rm -rf "$T/$name-$tool"
        cp -a "$P" "$T/$name-$tool"
    done
    IO_CMDS=$cmds
    _io_run_tool "$T/$name-qemu" qemu-io b.raw
    _io_run_tool "$T/$name-qed" "$QED_IO" b.raw
    grep -q 'write failed: Operation not permitted' "$T/$name-qemu.out" ||
        fail "$name: qemu-io did not refuse: $(cat "$T/$name-qemu.out")"
    ok=1
    for part in out status; do
        io_filter <"$T/$name-qemu.$part" >"$T/$name-qemu.$part.f"
        io_filter <"$T/$name-qed.$part" >"$T/$name-qed.$part.f"
        diff -u "$T/$name-qemu.$part.f" "$T/$name-qed.$part.f" >&2 || ok=0
    done
    grep -q "^qed-io: b.raw: write failed: the first sector would then probe as another" \
        "$T/$name-qed.err" || ok=0
    grep -v '^qed-io: b.raw: write failed: ' "$T/$name-qed.err" >"$T/$name-qed.err.f" || true
    diff -u "$T/$name-qemu.err" "$T/$name-qed.err.f" >&2 || ok=0
    cmp "$T/$name-qemu/b.raw" "$T/$name-qed/b.raw" || ok=0
    if [ "$ok" = 1 ]; then
        echo "ok: $name"
    else
        IO_FAILED="$IO_FAILED $name"
    fi
}

check_refused qcow2-header <<'EOF'
write -s qcow2.sector 0 512
read -P 0x5a 0 512
EOF
check_refused vmdk-descriptor <<'EOF'
write -s vmdk.sector 0 4096
EOF
check_refused qed-header <<'EOF'
write -s qed.sector 0 512
EOF
# Two writes, each harmless alone: the second would complete the header.
check_refused header-in-pieces <<'EOF'
write -z 0 512
write -s magic.bin 0 4
write -s version.bin 4 4
EOF
cmp -s "$P/b.raw" "$T/qcow2-header-qed/b.raw" || fail "a refused write changed the file"

# qemu-img check -r opens the image writable and warns too.
mkdir "$T/check"
cp "$P/b.raw" "$T/check/"
mismatches=0
cases=0
compare_runs "$T/check" "$T/check" check -r all b.raw
compare_runs "$T/check" "$T/check" check b.raw
[ "$mismatches" -eq 0 ] || IO_FAILED="$IO_FAILED check"

[ -z "$IO_FAILED" ] || fail "differences in:$IO_FAILED"
