#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# What an image's backing chain may reach when nbdkit qed serves it: by
# default (backing=dir, also spelt backing=true) only files beneath the
# image's directory, so a header naming /etc/passwd, ../../etc/passwd or a
# symlink out of the directory stops the server, also with -r and
# readonly=true; backing-dir=DIR widens or narrows that to DIR;
# backing=any follows any local file, as QEMU; backing=false opens none. A
# FIFO is refused under every policy, without hanging.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdcopy realpath

mkdir -p "$T/top/img" "$T/top/base"
cd "$T/top/img"
qemu-img create -q -f raw ../base/base.raw 1M
qemu-io -f raw -c 'write -q -P 0x5a 0 1M' ../base/base.raw

# The host file an untrusted image names, three ways.
up=$(realpath -m --relative-to="$T/top/img" /etc/passwd)   # ../../../../etc/passwd
ln -s /etc/passwd link
"$QED_IMG" create -q -u -f qed -b /etc/passwd -F raw abs.qed 1M
"$QED_IMG" create -q -u -f qed -b "$up" -F raw rel.qed 1M
"$QED_IMG" create -q -u -f qed -b link -F raw sym.qed 1M
for img in abs.qed rel.qed sym.qed; do
    cp "$img" "$img.orig"
    for policy in "" backing=dir backing=true; do
        for ro in "" -r readonly=true; do
            if [ "$ro" = -r ]; then
                # shellcheck disable=SC2086
                nbdkit_refuses "$img" -r "$NBDKIT_QED_PLUGIN" "$img" $policy
            else
                # shellcheck disable=SC2086
                nbdkit_refuses "$img" "$NBDKIT_QED_PLUGIN" "$img" $policy $ro
            fi
            grep -q "root:" "$T/refusal.txt" && fail "the refusal shows /etc/passwd"
        done
    done
    # backing-dir=DIR confines as well, whatever DIR is.
    nbdkit_refuses "$img" "$NBDKIT_QED_PLUGIN" "$img" backing-dir="$T/top"
    cmp "$img" "$img.orig" || fail "$img was changed"
done

# An image in img/ over ../base/base.raw: outside its own directory, so the
# default refuses it; backing-dir= the common parent allows it, a sibling
# directory does not.
"$QED_IMG" create -q -f qed -b ../base/base.raw -F raw over.qed 1M
nbdkit_refuses "over.qed" "$NBDKIT_QED_PLUGIN" over.qed
nbdkit_refuses "over.qed" "$NBDKIT_QED_PLUGIN" over.qed backing-dir="$T/top/img"
serve_qed over.qed backing-dir="$T/top"
qemu-io -f raw -r -c 'read -q -P 0x5a 0 1M' "$URI" >read.txt 2>&1
grep -q failed read.txt && fail "backing-dir= the parent: $(cat read.txt)"
stop_nbdkit
# A relative backing-dir is taken from nbdkit's working directory.
cd "$T"
serve_qed top/img/over.qed backing-dir=top
cd "$T/top/img"
qemu-io -f raw -r -c 'read -q -P 0x5a 0 1M' "$URI" >read.txt 2>&1
grep -q failed read.txt && fail "backing-dir=top: $(cat read.txt)"
stop_nbdkit

# backing=any: anything, as QEMU.
serve_qed over.qed backing=any
qemu-io -f raw -r -c 'read -q -P 0x5a 0 1M' "$URI" >read.txt 2>&1
grep -q failed read.txt && fail "backing=any: $(cat read.txt)"
stop_nbdkit
serve_qed abs.qed backing=any readonly=true
nbdcopy "$URI" - | head -c "$(stat -c %s /etc/passwd)" | cmp - /etc/passwd ||
    fail "backing=any does not read the backing file"
stop_nbdkit

# Whatever the policy, a FIFO is refused without hanging the open.
mkfifo fifo
"$QED_IMG" create -q -u -f qed -b fifo -F raw fifo.qed 1M
nbdkit_refuses "fifo.*FIFO" "$NBDKIT_QED_PLUGIN" fifo.qed
nbdkit_refuses "fifo.*FIFO" "$NBDKIT_QED_PLUGIN" fifo.qed backing=any

# backing=false: no backing file, zeros instead.
for img in abs.qed over.qed; do
    serve_qed "$img" backing=false readonly=true
    qemu-io -f raw -r -c 'read -q -P 0 0 1M' "$URI" >read.txt 2>&1
    grep -q failed read.txt && fail "backing=false on $img: $(cat read.txt)"
    stop_nbdkit
done
