#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A reference model of `qemu-img check` on QED images, independent of both
checkers: it reads the file with Python and applies the rules of libqed
(docs/format.md) or, with the same code and two switches, those of QEMU 7.2
(block/qed.c, block/qed-check.c), so that the corpus test can tell a
difference that QEMU's bugs explain from one that is ours.

    qed_model.py check IMAGE      -> JSON: {"ours": {...}, "qemu": {...}}
    qed_model.py reads IMAGE [N]  -> JSON: the first N clusters a read can
                                     reach, with what each must read
    qed_model.py kept IMAGE       -> JSON: what each allocated cluster must
                                     read after a repair

Each side is {"rc": exit status of check} plus, when the image opens, the
counts of qemu-img check's JSON (corruptions, leaks, allocated-clusters,
fragmented-clusters, total-clusters), or {"rc": 1, "error": why}.
"""
import hashlib
import json
import os
import struct
import sys

MAGIC = 0x00444551
F_BACKING, F_NEED_CHECK, F_NO_PROBE = 1, 2, 4
MAX_BACKING_NAME = 4096


class Image:
    def __init__(self, path):
        with open(path, 'rb') as f:
            self.data = f.read()
        self.length = len(self.data)
        h = self.data[:64].ljust(64, b'\0')
        (self.magic, self.cs, self.ts, self.hs, self.features, self.compat,
         self.autoclear, self.l1, self.size, self.bk_off,
         self.bk_size) = struct.unpack('<IIIIQQQQQII', h)

    def u64s(self, offset, count):
        raw = self.data[offset:offset + 8 * count].ljust(8 * count, b'\0')
        return struct.unpack('<%dQ' % count, raw)

    def read(self, offset, n):
        return self.data[offset:offset + n].ljust(n, b'\0')


def pow2_in(v, lo, hi):
    return lo <= v <= hi and v & (v - 1) == 0


def max_image_size(cs, ts, qemu):
    n = cs * ts // 8
    v = n * n * cs
    if qemu:
        return v & (2**64 - 1)  # QEMU computes in 64 bits and wraps
    return min(v, (2**63 - 1) & ~511)


def open_error(img, qemu):
    """Why the image does not open (as a short tag), or None."""
    if img.length < 64 or img.magic != MAGIC:
        return 'magic'
    if img.features & ~(F_BACKING | F_NEED_CHECK | F_NO_PROBE):
        return 'features'
    if not pow2_in(img.cs, 4096, 64 << 20):
        return 'cluster_size'
    if not pow2_in(img.ts, 1, 16):
        return 'table_size'
    if img.size % 512 or img.size > max_image_size(img.cs, img.ts, qemu):
        return 'image_size'
    if not qemu and img.hs == 0:
        return 'header_size'
    hb = img.hs * img.cs
    tb = img.ts * img.cs
    if qemu:
        fs = img.length // img.cs * img.cs
        end = img.l1 + (img.ts - 1) * img.cs
        if (end <= img.l1 or end >= 2**64 or img.l1 % img.cs or img.l1 < hb
                or img.l1 >= fs or end >= fs):
            return 'l1_offset'
        if img.hs > 0xffffffff // img.cs:
            return 'header_size'
    else:
        file_end = max(-(-img.length // img.cs) * img.cs, hb)
        if (img.l1 % img.cs or img.l1 < hb or img.l1 > file_end
                or file_end - img.l1 < tb or img.l1 + tb > img.length):
            return 'l1_offset'
        if img.hs > 0xffffffff // img.cs:  # after the L1 offset, as QEMU
            return 'header_size'
    if img.features & F_BACKING:
        if img.bk_off + img.bk_size > hb:
            return 'backing_offset'
        if img.bk_size >= MAX_BACKING_NAME:
            return 'backing_size'
        if not qemu and b'\0' in img.read(img.bk_off, img.bk_size):
            return 'backing_nul'
    return None


def check(img, qemu):
    """The counts of a check that does not repair."""
    err = open_error(img, qemu)
    if err:
        return {'rc': 1, 'error': err}
    cs, ts = img.cs, img.ts
    n = cs * ts // 8
    hb = img.hs * cs
    # QEMU: references must end by the file size rounded down; libqed: up.
    end = (img.length // cs if qemu else -(-img.length // cs)) * cs

    def index(off):
        if qemu:  # qed_bytes_to_clusters() divides by cluster_size - 1
            return (off + cs - 1) // cs * cs // (cs - 1)
        return off // cs

    def valid(off, nbytes):
        return off % cs == 0 and off >= hb and off < end and off + nbytes <= end

    # libqed reads a reference into a partial last cluster (rounding up) but
    # counts it a corruption as QEMU does; its repair grows the file.
    whole = img.length // cs * cs

    def sticks_out(off, nbytes):
        return 0 if qemu or off + nbytes <= whole else 1

    used = set()
    r = {'corruptions': 0, 'leaks': 0, 'allocated-clusters': 0,
         'fragmented-clusters': 0,
         'total-clusters': -(-img.size // cs)}

    def mark(off, count):
        first = index(off)
        again = sum(1 for i in range(first, first + count) if i in used)
        used.update(range(first, first + count))
        return again

    mark(img.l1, ts)
    for e in img.u64s(img.l1, n):
        if e == 0:
            continue
        if not valid(e, ts * cs):
            r['corruptions'] += 1
            continue
        again = mark(e, ts)
        if again:
            r['corruptions'] += again
            continue
        r['corruptions'] += sticks_out(e, ts * cs)
        last = 0
        for d in img.u64s(e, n):
            if d in (0, 1):
                continue
            r['allocated-clusters'] += 1
            if last and last + cs != d:
                r['fragmented-clusters'] += 1
            last = d
            if not valid(d, cs):
                r['corruptions'] += 1
                continue
            again = mark(d, 1)
            r['corruptions'] += again or sticks_out(d, cs)
    fs = img.length // cs * cs
    nclusters = index(fs) if qemu else fs // cs
    r['leaks'] = sum(1 for i in range(img.hs, nclusters) if i not in used)
    r['rc'] = 2 if r['corruptions'] else 3 if r['leaks'] else 0
    return r


class Tables:
    """libqed's aliasing rule (docs/format.md): the tables a request may use
    and a repair keeps. The L1 table first, then each L1 entry in index order
    (all of the table, past image_size too) whose table is valid in a file
    whose clusters end at `end` and overlaps no table taken before it. A data
    cluster that overlaps one of them aliases metadata."""

    def __init__(self, img, end):
        self.cs, self.tb = img.cs, img.ts * img.cs
        hb = img.hs * img.cs
        self.owner = {img.l1: None}
        for i, e in enumerate(img.u64s(img.l1, img.cs * img.ts // 8)):
            if not e or e % img.cs or e < hb or e > end or end - e < self.tb:
                continue
            if not any(t < e + self.tb and e < t + self.tb for t in self.owner):
                self.owner[e] = i

    def owns(self, offset, i):
        return offset in self.owner and self.owner[offset] == i

    def aliases(self, d):
        return any(t < d + self.cs and d < t + self.tb for t in self.owner)


def reads(img, limit):
    """Clusters a read reaches and what libqed must return for each: the
    bytes of the referenced cluster (sha256) when the reference is valid,
    else an error (also for a reference into metadata). Only for images that
    libqed opens."""
    if open_error(img, False):
        return []
    cs, ts = img.cs, img.ts
    n = cs * ts // 8
    hb = img.hs * cs
    file_end = max(-(-img.length // cs) * cs, hb)
    tables = Tables(img, file_end)
    coverage = n * cs
    out = []
    l1_nelems = max(1, -(-img.size // coverage))
    for i, e in enumerate(img.u64s(img.l1, l1_nelems)):
        if e == 0:
            continue
        base = i * coverage
        if not tables.owns(e, i):
            out.append({'offset': base, 'expect': 'error'})
            continue
        for j, d in enumerate(img.u64s(e, n)):
            v = base + j * cs
            if d == 0 or v >= img.size:
                continue
            if d == 1:
                want = hashlib.sha256(bytes(cs)).hexdigest()
            elif d % cs or d < hb or d >= file_end or tables.aliases(d):
                want = 'error'
            else:
                want = hashlib.sha256(img.read(d, cs)).hexdigest()
            out.append({'offset': v, 'expect': want})
            if len(out) >= limit:
                return out
    return out


def kept(img):
    """What each allocated virtual cluster must read after a repair that
    clears every bad reference (the first reference to a data cluster, in
    walk order, is kept; the tables are those of the aliasing rule, and a
    data reference into one is cleared): {offset: sha256 of its bytes, or of
    zeros when the repair clears it}. Only for images that libqed opens."""
    if open_error(img, False):
        return {}
    cs, ts = img.cs, img.ts
    n = cs * ts // 8
    hb = img.hs * cs
    end = -(-img.length // cs) * cs
    coverage = n * cs
    zero = hashlib.sha256(bytes(cs)).hexdigest()

    def valid(off, nbytes):
        return off % cs == 0 and off >= hb and off < end and off + nbytes <= end

    # libqed reads a reference into a partial last cluster (rounding up) but
    # counts it a corruption as QEMU does; its repair grows the file.
    whole = img.length // cs * cs

    def sticks_out(off, nbytes):
        return 0 if qemu or off + nbytes <= whole else 1

    tables = Tables(img, end)
    used = set()
    out = {}
    l1_nelems = max(1, -(-img.size // coverage))
    for i, e in enumerate(img.u64s(img.l1, n)):
        if e == 0:
            continue
        table_ok = tables.owns(e, i)
        if not table_ok and (i >= l1_nelems or not valid(e, ts * cs)):
            continue

        def keeps(d):
            return table_ok and valid(d, cs) and not tables.aliases(d) and d // cs not in used

        for j, d in enumerate(img.u64s(e, n)):
            v = i * coverage + j * cs
            if d == 0 or v >= img.size or i >= l1_nelems:
                if d > 1 and keeps(d):
                    used.add(d // cs)
                continue
            if d == 1:
                out[v] = zero
            elif keeps(d):
                used.add(d // cs)
                out[v] = hashlib.sha256(img.read(d, cs)).hexdigest()
            else:
                out[v] = zero
    return out


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    img = Image(path)
    if cmd == 'check':
        print(json.dumps({'ours': check(img, False), 'qemu': check(img, True)},
                         sort_keys=True))
    elif cmd == 'kept':
        print(json.dumps({'cluster_size': img.cs,
                          'kept': {str(k): v for k, v in sorted(kept(img).items())}}))
    elif cmd == 'reads':
        limit = int(sys.argv[3]) if len(sys.argv) > 3 else 64
        print(json.dumps({'cluster_size': img.cs, 'reads': reads(img, limit)}))
    else:
        sys.exit('usage: qed_model.py check|reads IMAGE')


if __name__ == '__main__':
    main()
