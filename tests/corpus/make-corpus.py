#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Builds the corrupt-image corpus of `qed-img check` in OUTDIR.

    make-corpus.py OUTDIR

Every image starts as one that qemu-img and qemu-io made (they must be on
PATH), with each data cluster then filled with its own content (every
sector says "QEDCORPUS" and its file offset), and is then damaged in one
way: header fields out of range, tables overlapping the header, each other
or the end of the file, cycles between L1 and L2, data references into the
L1 table or an L2 table (metadata aliasing), duplicate references,
leaks, huge image sizes in tiny files, odd backing file names. OUTDIR/MANIFEST
lists them, one per line: name, tags (comma separated, '-' for none) and
what was done, separated by tabs. Tags:

  backing       the image names a backing file: qemu-img check opens it (and
                fails when it cannot); compare with QEMU's backing=null
  known:WHY     qed-img and qemu-img are expected to differ, for the reason
                WHY that docs/format.md explains (the reference model in
                qed_model.py predicts both results)
"""
import os
import struct
import subprocess
import sys

MANIFEST = []


def run(*cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


class Img:
    """A QED image in memory; header fields by name, tables by index."""
    FIELDS = ('magic', 'cs', 'ts', 'hs', 'features', 'compat', 'autoclear',
              'l1', 'size', 'bk_off', 'bk_size')
    FORMAT = '<IIIIQQQQQII'

    def __init__(self, data):
        self.data = bytearray(data)
        vals = struct.unpack(self.FORMAT, bytes(self.data[:64]))
        self.h = dict(zip(self.FIELDS, vals))
        self.cs, self.ts = self.h['cs'], self.h['ts']
        self.n = self.cs * self.ts // 8

    @classmethod
    def load(cls, path):
        with open(path, 'rb') as f:
            return cls(f.read())

    def copy(self):
        return Img(bytes(self.data))

    def set(self, **fields):
        self.h.update(fields)
        self.data[:64] = struct.pack(self.FORMAT, *[self.h[k] for k in self.FIELDS])
        return self

    def u64(self, offset):
        return struct.unpack_from('<Q', self.data, offset)[0]

    def put64(self, offset, value):
        end = offset + 8
        if end > len(self.data):
            self.data.extend(bytes(end - len(self.data)))
        struct.pack_into('<Q', self.data, offset, value)

    def l1(self, i):
        return self.u64(self.h['l1'] + 8 * i)

    def set_l1(self, i, value):
        self.put64(self.h['l1'] + 8 * i, value)
        return self

    def l2(self, i, j):
        return self.u64(self.l1(i) + 8 * j)

    def set_l2(self, i, j, value):
        self.put64(self.l1(i) + 8 * j, value)
        return self

    def tables(self):
        return [self.l1(i) for i in range(self.n) if self.l1(i)]

    def data_clusters(self):
        return [d for t in self.tables() for d in struct.unpack_from(
            '<%dQ' % self.n, self.data, t) if d > 1]

    def clusters(self):
        return len(self.data) // self.cs

    def append(self, nclusters, fill=b'\0'):
        offset = len(self.data)
        self.data.extend(fill * (nclusters * self.cs // len(fill)))
        return offset

    def truncate(self, length):
        del self.data[length:]
        self.data.extend(bytes(max(0, length - len(self.data))))
        return self

    def label_data(self):
        """Each data cluster gets its own content."""
        for d in self.data_clusters():
            for s in range(d, d + self.cs, 512):
                self.data[s:s + 512] = (b'QEDCORPUS' + struct.pack('<Q', s)).ljust(512, b'.')
        return self


def save(outdir, name, img, what, tags=()):
    with open(os.path.join(outdir, name + '.qed'), 'wb') as f:
        f.write(img.data)
    MANIFEST.append('%s\t%s\t%s' % (name, ','.join(tags) or '-', what))


def base(outdir, name, opts, size, writes):
    path = os.path.join(outdir, 'base-' + name + '.qed')
    run('qemu-img', 'create', '-q', '-f', 'qed', '-o', opts, path, size)
    if writes:
        args = []
        for w in writes:
            args += ['-c', w]
        run('qemu-io', '-f', 'qed', *args, path)
    img = Img.load(path)
    os.unlink(path)
    return img.label_data()


def header_cases(out, b):
    cs = b.cs
    length = len(b.data)
    cases = [
        ('hdr-magic', dict(magic=0x00454551), 'magic QEE\\0: not QED (probed as raw)'),
        ('hdr-features-unknown', dict(features=0x10), 'unknown feature bit 4'),
        ('hdr-features-high', dict(features=1 << 63), 'unknown feature bit 63'),
        ('hdr-compat-unknown', dict(compat=0xff), 'unknown compat bits (ignored)'),
        ('hdr-autoclear-unknown', dict(autoclear=0x3), 'unknown autoclear bits'),
        ('hdr-cs-0', dict(cs=0), 'cluster_size 0'),
        ('hdr-cs-2k', dict(cs=2048), 'cluster_size 2 KiB (below 4 KiB)'),
        ('hdr-cs-128m', dict(cs=128 << 20), 'cluster_size 128 MiB (above 64 MiB)'),
        ('hdr-cs-odd', dict(cs=65537), 'cluster_size not a power of two'),
        ('hdr-cs-2g', dict(cs=1 << 31), 'cluster_size 2^31'),
        ('hdr-ts-0', dict(ts=0), 'table_size 0'),
        ('hdr-ts-3', dict(ts=3), 'table_size 3'),
        ('hdr-ts-32', dict(ts=32), 'table_size 32'),
        ('hdr-ts-max', dict(ts=0xffffffff), 'table_size 2^32-1'),
        ('hdr-hs-2', dict(hs=2), 'header_size 2: the L1 table is inside the header'),
        ('hdr-hs-huge', dict(hs=0xffffffff), 'header_size 2^32-1'),
        ('hdr-l1-unaligned', dict(l1=cs + 512), 'L1 table offset not cluster aligned'),
        ('hdr-l1-zero', dict(l1=0), 'L1 table at offset 0, over the header'),
        ('hdr-l1-past-eof', dict(l1=1 << 30), 'L1 table past the end of the file'),
        ('hdr-l1-overlap-eof', dict(l1=length - cs), 'L1 table sticking out of the file'),
        ('hdr-l1-huge', dict(l1=2**64 - cs), 'L1 table offset 2^64 - cluster_size'),
        ('hdr-l1-on-l2', dict(l1=b.l1(0)),
         'L1 offset pointing at an L2 table: data clusters read as L2 tables'),
        ('hdr-size-unaligned', dict(size=b.h['size'] + 1), 'image_size not a multiple of 512'),
        ('hdr-size-0', dict(size=0), 'image_size 0 with tables in use'),
        ('hdr-size-max', dict(size=(cs * b.ts // 8) ** 2 * cs),
         'the largest image_size of the geometry in a tiny file'),
        ('hdr-size-over', dict(size=(cs * b.ts // 8) ** 2 * cs + 512),
         'image_size 512 bytes past what the tables can map'),
        ('hdr-size-2p63', dict(size=1 << 63), 'image_size 2^63'),
        ('hdr-size-2p64m512', dict(size=2**64 - 512), 'image_size 2^64 - 512'),
    ]
    for name, fields, what in cases:
        save(out, name, b.copy().set(**fields), what)
    # header_size 0: QEMU opens it, and nothing protects the header cluster.
    save(out, 'hdr-hs-0', b.copy().set(hs=0), 'header_size 0', ['known:header-size-0'])
    # header_size 2 with the L1 table moved out of the header, and an L2
    # entry pointing into the (bigger) header.
    img = b.copy()
    l1_copy = img.append(img.ts)
    img.data[l1_copy:l1_copy + img.ts * cs] = img.data[img.h['l1']:img.h['l1'] + img.ts * cs]
    img.set(hs=2, l1=l1_copy)
    save(out, 'hdr-hs-2-l1-moved', img,
         'header_size 2, the L1 table copied to the end: its old place leaks')
    save(out, 'hdr-hs-2-l2-in-header', img.copy().set_l2(0, 3, cs),
         'header_size 2 and an L2 entry pointing at cluster 1, inside the header')
    # NEED_CHECK with leaks and corruptions (a plain check must not repair).
    save(out, 'hdr-need-check', b.copy().set(features=2), 'NEED_CHECK set, consistent')
    img = b.copy().set(features=2).set_l2(0, 16, 0)
    img.set_l2(1, 1, 7 * cs + 8)
    save(out, 'hdr-need-check-damaged', img,
         'NEED_CHECK set, a leak in the middle and an unaligned L2 entry')
    save(out, 'hdr-noprobe-alone', b.copy().set(features=4),
         'BACKING_FORMAT_NO_PROBE without a backing file (ignored)')


def backing_cases(out, b, outdir):
    cs = b.cs

    def named(name, what, raw, size=None, offset=64, tags=('backing',), features=1):
        img = b.copy()
        img.data[offset:offset + len(raw)] = raw
        img.set(features=features, bk_off=offset, bk_size=len(raw) if size is None else size)
        save(out, name, img, what, list(tags))

    named('bk-empty', 'backing file feature with an empty name', b'', tags=())
    named('bk-missing', 'backing file that does not exist', b'missing-base.raw')
    named('bk-ok', 'backing file that exists (raw, as the name says)', b'corpus-base.raw',
          features=1 | 4, tags=())
    named('bk-dir', 'backing file that is a directory', b'.')
    named('bk-self', 'backing file that is the image itself', b'bk-self.qed')
    named('bk-long-4095', 'a backing name of 4095 bytes', b'a' * 4095)
    named('bk-long-4096', 'a backing name of 4096 bytes (too long for both)', b'a' * 4096)
    named('bk-outside-header', 'a backing name that ends past the header cluster',
          b'name', offset=cs - 2)
    named('bk-offset-huge', 'backing name offset and size 2^32-1', b'', offset=64,
          size=0xffffffff)
    named('bk-nul', 'a backing name with a NUL byte in it', b'ab\0cd',
          tags=('backing', 'known:backing-nul'))
    run('qemu-img', 'create', '-q', '-f', 'raw', os.path.join(outdir, 'corpus-base.raw'),
        '8M')


def table_cases(out, b, tag=''):
    cs = b.cs
    ts = b.ts
    l1 = b.h['l1']
    t0, t1, t2 = b.l1(0), b.l1(1), b.l1(2)
    d0 = b.l2(0, 0)
    d_1m = b.l2(0, 16)
    length = len(b.data)
    free = 3  # an L1 index that no table uses

    def case(name, img, what, tags=()):
        save(out, name + tag, img, what, tags)

    case('l1-unaligned', b.copy().set_l1(free, t0 + 8), 'L1 entry not cluster aligned')
    case('l1-reserved-bit', b.copy().set_l1(0, t0 | 1), 'L1 entry with a low bit set')
    case('l1-in-header', b.copy().set_l1(free, 512), 'L1 entry inside the header cluster')
    case('l1-past-eof', b.copy().set_l1(free, 1 << 40), 'L1 entry past the end of the file')
    case('l1-at-eof', b.copy().set_l1(free, length), 'L1 entry at the end of the file')
    case('l1-overlap-eof', b.copy().set_l1(free, length - cs),
         'L2 table sticking out of the file by table_size - 1 clusters')
    case('l1-overlap-l1', b.copy().set_l1(free, l1), 'L1 entry pointing at the L1 table')
    case('l1-overlap-l1-part', b.copy().set_l1(free, l1 + (ts // 2) * cs),
         'L2 table half over the L1 table')
    case('l1-same-table', b.copy().set_l1(free, t0), 'two L1 entries, one L2 table')
    case('l1-overlapping-tables', b.copy().set_l1(free, t0 + cs),
         'L2 table overlapping another one')
    case('l1-to-data', b.copy().set_l1(free, d_1m),
         'L1 entry pointing at a data cluster met earlier (an L2 -> data -> L1 cycle)')
    case('l1-to-data-first', b.copy().set_l1(0, b.l2(2, 0)),
         'first L1 entry pointing at a data cluster of a later table')
    img = b.copy()
    extra = img.append(ts)
    case('l1-beyond-size', img.set_l1(b.n - 1, extra),
         'last L1 entry, past image_size, pointing at an empty table at the end')
    case('l1-beyond-size-bad', b.copy().set_l1(b.n - 1, 1 << 50),
         'last L1 entry, past image_size, pointing past the end of the file')
    case('l2-unaligned', b.copy().set_l2(0, 0, d0 + 512), 'L2 entry not cluster aligned')
    case('l2-reserved-bit', b.copy().set_l2(0, 1, b.l2(0, 1) | 2), 'L2 entry with a low bit set')
    case('l2-in-header', b.copy().set_l2(0, 0, 4096 if cs > 4096 else 2048),
         'L2 entry inside the header cluster')
    case('l2-past-eof', b.copy().set_l2(0, 16, 1 << 40), 'L2 entry past the end of the file')
    case('l2-at-eof', b.copy().set_l2(0, 16, length), 'L2 entry at the end of the file')
    case('l2-huge', b.copy().set_l2(0, 16, 2**64 - cs), 'L2 entry 2^64 - cluster_size')
    case('l2-to-l1', b.copy().set_l2(0, 16, l1), 'L2 entry pointing at the L1 table')
    case('l2-to-own-l2', b.copy().set_l2(0, 16, t0), 'L2 entry pointing at its own table')
    case('l2-to-later-l2', b.copy().set_l2(0, 16, t2),
         'L2 entry pointing at an L2 table walked later')
    case('l2-to-l1-last', b.copy().set_l2(0, 16, l1 + (ts - 1) * cs),
         'L2 entry pointing at the last cluster of the L1 table')
    case('l2-to-later-l2-last', b.copy().set_l2(0, 16, t2 + (ts - 1) * cs),
         'L2 entry pointing at the last cluster of an L2 table walked later')
    # Tables of L1 entries past image_size are metadata too.
    beyond = b.n - 2
    img = b.copy()
    extra = img.append(ts)
    case('l2-to-table-past-size', img.set_l1(beyond, extra).set_l2(0, 40, extra + cs),
         'L2 entry pointing into the table of an L1 entry past image_size')
    # A run of two clusters, contiguous in the file: a (leaked) data cluster,
    # then an L2 table: a request over the run must stop where it meets it.
    img = b.copy()
    data = img.append(1, b'R')
    extra = img.append(ts)
    img.set_l1(beyond, extra).set_l2(0, 40, data).set_l2(0, 41, extra)
    case('l2-run-into-l2', img,
         'two L2 entries, contiguous in the file: a data cluster, then an L2 table')
    case('l2-dup-same', b.copy().set_l2(0, 40, d0), 'two entries of one table, one cluster')
    case('l2-dup-cross', b.copy().set_l2(1, 5, d0), 'entries of two tables, one cluster')
    case('l2-zero-cluster', b.copy().set_l2(0, 30, 1), 'a zero cluster entry (valid)')
    img = b.copy()
    for j in range(b.n):
        img.set_l2(1, j, (j + 1) * 4096 + 7)
    case('l2-all-garbage', img, 'every entry of one L2 table unaligned')
    case('truncated', b.copy().truncate(t1), 'file cut before the second L2 table')
    case('leak-end', b.copy().truncate(length + 3 * cs), 'three leaked clusters at the end')
    case('leak-middle', b.copy().set_l2(0, 16, 0), 'a leaked data cluster in the middle')
    case('leak-table', b.copy().set_l1(1, 0), 'an L2 table and its data leaked')
    case('leak-partial-tail', b.copy().truncate(length + cs // 2),
         'half a cluster past the last one (not a leak)')
    img = b.copy().set_l2(0, 16, 0).set_l1(2, 0)
    case('leak-many', img.truncate(length + 2 * cs),
         'leaks in the middle (a data cluster, a table and its data) and at the end')
    # The last cluster (a data cluster) cut short.
    img = b.copy()
    img.set_l2(0, 50, img.append(1, b'Q'))
    case('partial-last-data', img.truncate(len(img.data) - cs // 2),
         'the last data cluster sticks out half a cluster past the end of the file')
    case('partial-last-table', b.copy().truncate(length - 512),
         'the last L2 table sticks out 512 bytes past the end of the file',
         ['known:partial-table'])


def big_cases(out, outdir):
    """4 KiB clusters, more than cluster_size - 1 of them in the file."""
    b = base(outdir, 'big4k', 'cluster_size=4k,table_size=2', '64M',
             ['write -P 0x55 0 20M', 'write -P 0x66 40M 64k'])
    save(out, 'big-clean', b, '4 KiB clusters, 20 MiB written: 5000+ clusters',
         ['known:false-leaks'])
    img = b.copy().set_l2(1, 7, 0).set_l2(3, 100, 0)
    save(out, 'big-leaks', img.truncate(len(img.data) + 5 * 4096),
         '5000+ clusters with two leaks in the middle and five at the end',
         ['known:false-leaks'])
    save(out, 'big-corrupt', b.copy().set_l2(2, 9, 1 << 40).set_l2(4, 3, b.l2(0, 0)),
         '5000+ clusters, an entry past the end and a duplicate', ['known:false-leaks'])


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: make-corpus.py OUTDIR')
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # 64 KiB clusters, table_size 4, three L2 tables (2 GiB each); data at
    # 0 (two clusters), 1 MiB, 2 GiB and 4 GiB, a zero cluster at 6 MiB.
    b64 = base(out, 'b64k', 'cluster_size=64k,table_size=4', '6G',
               ['write -P 0x11 0 128k', 'write -P 0x22 1M 64k', 'write -P 0x33 2G 64k',
                'write -P 0x44 4G 64k', 'write -z 6M 64k'])
    save(out, 'clean-64k', b64, 'a consistent image: 64 KiB clusters, three L2 tables')
    header_cases(out, b64)
    backing_cases(out, b64, out)
    table_cases(out, b64)
    # 4 KiB clusters, table_size 2 (4 MiB per L2 table).
    b4 = base(out, 'b4k', 'cluster_size=4k,table_size=2', '16M',
              ['write -P 0x11 0 8k', 'write -P 0x22 64k 4k', 'write -P 0x33 4M 4k',
               'write -P 0x44 8M 4k', 'write -z 12M 4k'])
    save(out, 'clean-4k', b4, 'a consistent image: 4 KiB clusters, two-cluster tables')
    table_cases(out, b4, tag='-4k')
    big_cases(out, out)
    # Geometries QEMU creates but cannot open, or whose sizes wrap in QEMU.
    path = os.path.join(out, 'geo-t1.qed')
    run('qemu-img', 'create', '-q', '-f', 'qed', '-o', 'table_size=1', path, '1G')
    MANIFEST.append('geo-t1\tknown:table-size-1\ttable_size 1 (QEMU refuses to open it)')
    path = os.path.join(out, 'geo-huge.qed')
    run('qemu-img', 'create', '-q', '-f', 'qed', '-o', 'cluster_size=64k,table_size=16',
        path, '1P')
    MANIFEST.append('geo-huge\t-\t1 PiB virtual disk (the largest of 64k/16) in a tiny file')
    # 4 MiB clusters and table_size 4: entries^2 * cluster_size is 2^64,
    # which QEMU computes as 0, so it only takes size 0; made so, then grown
    # in place (the file stays sparse).
    path = os.path.join(out, 'geo-wrap.qed')
    run('qemu-img', 'create', '-q', '-f', 'qed', '-o', 'cluster_size=4M,table_size=4', path, '0')
    with open(path, 'r+b') as f:
        f.seek(48)
        f.write(struct.pack('<Q', 1 << 40))
    MANIFEST.append('geo-wrap\tknown:image-size-wrap\t4 MiB clusters, table_size 4, 1 TiB: '
                    'QEMU\'s size limit wraps to 0')
    with open(os.path.join(out, 'MANIFEST'), 'w') as f:
        f.write('\n'.join(MANIFEST) + '\n')
    print('%d images in %s' % (len(MANIFEST), out))


if __name__ == '__main__':
    main()
