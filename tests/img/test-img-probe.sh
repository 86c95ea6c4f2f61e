#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Probing: every image format QEMU knows besides qed and raw is recognised
# and refused by qed-img and qed-io ("Image format 'X' is not supported"),
# never opened as raw, and the file is left as it was. Each sample is first
# shown to be what QEMU itself probes it as, so a bad sample cannot pass:
# images made by qemu-img create where it can make them, headers written by
# hand for the rest, and the edge cases of QEMU's rules (versions, VMDK
# descriptor syntax, the tie between vdi's signature at offset 64 and the
# magics at offset 0, dmg by name).
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/img/img-common.sh"
requires qemu-img qemu-io python3 cmp

cd "$T"

# What QEMU probes FILE as: qemu-img info names the format when the open
# works; when the driver then fails, its error is the one `-f FMT` gives.
qemu_probes_as() {
    file=$1
    fmt=$2
    if qemu-img info "$file" >q.out 2>&1; then
        grep -qx "file format: $fmt" q.out
        return
    fi
    qemu-img info -f "$fmt" "$file" >f.out 2>&1 || true
    qemu-img info -f raw "$file" >r.out 2>&1 || true
    cmp -s q.out f.out && ! cmp -s q.out r.out
}

# check_refused FILE FMT: the tools refuse FILE as format FMT, and leave it alone.
check_refused() {
    file=$1
    fmt=$2
    want="Could not open '$file': Image format '$fmt' is not supported"
    cp "$file" pristine.bin
    cases=$((cases + 1))
    for args in "info" "info -f $fmt" "info --output=json" "check" "check -r all"; do
        set +e
        # shellcheck disable=SC2086
        "$QED_IMG" $args "$file" >out.txt 2>err.txt
        status=$?
        set -e
        [ "$status" -eq 1 ] || mismatch "qed-img $args $file exited $status, expected 1"
        [ "$(cat err.txt)" = "qed-img: $want" ] ||
            mismatch "qed-img $args $file: $(cat err.txt)"
        [ ! -s out.txt ] || mismatch "qed-img $args $file printed $(cat out.txt)"
    done
    for opts in "" "-r" "-f $fmt"; do
        set +e
        # shellcheck disable=SC2086
        "$QED_IO" $opts -c 'write -P 0x41 0 512' "$file" >out.txt 2>err.txt
        status=$?
        set -e
        [ "$status" -eq 1 ] || mismatch "qed-io $opts $file exited $status, expected 1"
        # qemu-io's words: the reason without qemu-img's "Could not open 'FILE': "
        grep -qxF "qed-io: can't open device $file: Image format '$fmt' is not supported" err.txt ||
            mismatch "qed-io $opts $file: $(cat err.txt)"
    done
    cmp -s pristine.bin "$file" || mismatch "$file was changed"
}

# check_probe FILE FMT: QEMU probes FILE as FMT, and so do we.
check_probe() {
    file=$1
    fmt=$2
    cases=$((cases + 1))
    if ! qemu_probes_as "$file" "$fmt"; then
        mismatch "bad sample: QEMU does not probe $file as $fmt: $(cat q.out)"
        return
    fi
    case $fmt in
    raw | qed)
        "$QED_IMG" info "$file" >out.txt 2>err.txt || mismatch "qed-img info $file failed"
        grep -qx "file format: $fmt" out.txt || mismatch "$file: $(cat out.txt err.txt)"
        ;;
    *)
        check_refused "$file" "$fmt"
        ;;
    esac
}

# Images that qemu-img makes itself.
for fmt in qcow2 qcow vdi vhdx vpc parallels; do
    qemu-img create -q -f "$fmt" "img.$fmt" 1M
    check_probe "img.$fmt" "$fmt"
done
qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 1M
check_probe v2.qcow2 qcow2
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat \
    streamOptimized; do
    qemu-img create -q -f vmdk -o subformat=$sub "$sub.vmdk" 1M
    check_probe "$sub.vmdk" vmdk
done
# The descriptor of a split image is text; its flat extent is plain data.
head -c 200 monolithicFlat.vmdk | grep -q '^# Disk DescriptorFile' ||
    fail "monolithicFlat.vmdk is no descriptor file"
check_probe monolithicFlat-flat.vmdk raw
# LUKS needs a secret; where qemu-img cannot time its key derivation (some
# sandboxes report no thread CPU time), a header written by hand stands in.
if qemu-img create -q -f luks --object secret,id=sec0,data=secret \
    -o key-secret=sec0,iter-time=10 img.luks 1M 2>/dev/null; then
    check_probe img.luks luks
fi

# Headers written by hand: each file is 64 KiB of zeros with the given bytes
# at the given offsets.
python3 - <<'EOF'
import struct

def sample(name, *parts, size=65536):
    buf = bytearray(size)
    for offset, data in parts:
        buf[offset:offset + len(data)] = data
    with open(name, 'wb') as f:
        f.write(buf)

def cstr(s, width):
    return s.encode().ljust(width, b'\0')

qcow = b'QFI\xfb'
vdi_sig = (64, struct.pack('<I', 0xbeda107f))
bochs = lambda sub, version: [(0, cstr('Bochs Virtual HD Image', 32) + cstr('Redolog', 16)
                               + cstr(sub, 16) + struct.pack('<I', version))]
cloop = (b'#!/bin/sh\n#V2.0 Format\n'
         b'modprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n')

sample('bochs.img', *bochs('Growing', 0x20000))
sample('bochs-v1.img', *bochs('Growing', 0x10000))
sample('bochs-undoable.img', *bochs('Undoable', 0x20000))
sample('cloop.img', (0, cloop), (128, struct.pack('>II', 512, 1)))
sample('cloop-cut.img', (0, cloop[:80]))
sample('disk.dmg', (0, b'koly'))
sample('cloop.dmg', (0, cloop))
sample('qcow2.dmg', (0, qcow + struct.pack('>I', 3)))
sample('hand.luks', (0, b'LUKS\xba\xbe\x00\x01'))
sample('luks-v2.img', (0, b'LUKS\xba\xbe\x00\x02'))
sample('qcow-v0.img', (0, qcow + struct.pack('>I', 0)))
sample('qcow2-vmax.img', (0, qcow + struct.pack('>I', 0xffffffff)))
sample('vdi-only.img', vdi_sig)
sample('parallels2.img', (0, b'WithouFreSpacExt' + struct.pack('<I', 2)))
sample('parallels-v1.img', (0, b'WithoutFreeSpace' + struct.pack('<I', 1)))
sample('vmdk3.img', (0, b'COWD'))
sample('vmdk-comments.img', (0, b'# Disk DescriptorFile\n#\n   \r\n  \nversion=2\r\n'))
sample('vmdk-v3.img', (0, b'version=3\n'))
sample('vmdk-empty-line.img', (0, b'# Disk DescriptorFile\n\nversion=1\n'))
sample('vmdk-v4.img', (0, b'version=4\n'))
sample('vmdk-tab.img', (0, b'\tversion=1\n'))
# vdi's signature at offset 64 beside another format's magic at offset 0:
# QEMU's driver list decides.
sample('tie-qcow2-vdi.img', (0, qcow + struct.pack('>I', 3)), vdi_sig)
sample('tie-vpc-vdi.img', (0, b'conectix'), vdi_sig)
sample('tie-vmdk-vdi.img', (0, b'version=1\n'), vdi_sig)
sample('tie-parallels-vdi.img', (0, b'WithoutFreeSpace' + struct.pack('<I', 2)), vdi_sig)
sample('short.img', (0, b'QFI'), size=3)
sample('empty.dmg', size=0)
EOF
check_probe bochs.img bochs
check_probe bochs-v1.img bochs
check_probe bochs-undoable.img raw
check_probe cloop.img cloop
check_probe cloop-cut.img raw
check_probe disk.dmg dmg
check_probe cloop.dmg dmg
check_probe qcow2.dmg qcow2
check_probe hand.luks luks
check_probe luks-v2.img raw
check_probe qcow-v0.img raw
check_probe qcow2-vmax.img qcow2
check_probe vdi-only.img vdi
check_probe parallels2.img parallels
check_probe parallels-v1.img raw
check_probe vmdk3.img vmdk
check_probe vmdk-comments.img vmdk
check_probe vmdk-v3.img vmdk
check_probe vmdk-empty-line.img raw
check_probe vmdk-v4.img raw
check_probe vmdk-tab.img raw
check_probe tie-qcow2-vdi.img vdi
check_probe tie-vpc-vdi.img vdi
check_probe tie-vmdk-vdi.img vdi
check_probe tie-parallels-vdi.img parallels
check_probe short.img raw
check_probe empty.dmg raw

# A QED image whose backing file name puts vdi's signature at offset 64:
# qed comes first in QEMU's list, so it stays a QED image.
qemu-img create -q -f qed -u -b "$(printf '\177\020\332\276')" -F raw tie.qed 1M
check_probe tie.qed qed

# A format QEMU does not know at all keeps QEMU's words.
compare_runs . . info -f frob img.qcow2

report_mismatches
