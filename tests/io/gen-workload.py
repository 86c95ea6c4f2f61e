#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Seeded random qemu-io workloads for the differential test.

From one seed this derives an image layout (cluster size, table size, virtual
size, backing file kind and size) and writes two command files into OUTDIR:
base.cmds fills the backing file, ops.cmds is the workload run on the
overlay. Writes, zero writes, discards, vectored and concurrent (aio)
requests land at unaligned offsets and lengths around cluster and L2-table
boundaries; a model of the expected contents turns every read into
`read -q -P` checks, so a wrong byte prints "Pattern verification failed".
The layout is printed as shell assignments.
"""
import argparse
import bisect
import os
import random


class Contents:
    """The expected bytes of the disk as runs of one byte value."""

    def __init__(self, size):
        self.size = size
        self.starts = [0]  # sorted run starts
        self.values = [0]  # value of each run

    def value_at(self, pos):
        return self.values[bisect.bisect_right(self.starts, pos) - 1]

    def fill(self, start, end, value):
        end = min(end, self.size)
        if start >= end:
            return
        after = self.value_at(end) if end < self.size else None
        lo = bisect.bisect_left(self.starts, start)
        hi = bisect.bisect_left(self.starts, end)
        del self.starts[lo:hi]
        del self.values[lo:hi]
        self.starts.insert(lo, start)
        self.values.insert(lo, value)
        if after is not None and (lo + 1 >= len(self.starts) or self.starts[lo + 1] != end):
            self.starts.insert(lo + 1, end)
            self.values.insert(lo + 1, after)

    def runs(self, start, end):
        """(offset, length, value) for each run that [start, end) crosses."""
        i = bisect.bisect_right(self.starts, start) - 1
        pos = start
        while pos < end:
            run_end = self.starts[i + 1] if i + 1 < len(self.starts) else self.size
            stop = min(run_end, end)
            yield pos, stop - pos, self.values[i]
            pos = stop
            i += 1


class Workload:
    def __init__(self, rng, size, cluster, l2_span):
        self.rng = rng
        self.size = size
        self.cluster = cluster
        # Where requests cluster: the disk's ends, every L2-table boundary,
        # and a few random cluster boundaries.
        spots = [0, size]
        spots += list(range(l2_span, size, l2_span))
        spots += [rng.randrange(size // cluster) * cluster for _ in range(4)]
        self.spots = spots
        self.contents = Contents(size)
        self.lines = []

    def emit(self, line):
        self.lines.append(line)

    def pick_range(self, max_clusters=4):
        r = self.rng
        c = self.cluster
        spot = r.choice(self.spots)
        kind = r.random()
        if kind < 0.35:
            length = r.randint(1, c // 2)
        elif kind < 0.7:
            length = r.randint(c // 2, 2 * c)
        elif kind < 0.9:
            length = r.randint(2 * c, max_clusters * c)
        else:
            length = r.choice([c, 2 * c, 512, 4096])
        if r.random() < 0.25:
            # Cluster-aligned requests are the ones that can make whole
            # zero clusters or replace whole data clusters.
            offset = spot + r.randint(-3, 3) * c
            length = max(c, length // c * c)
        else:
            offset = spot + r.randint(-3 * c, 3 * c)
        offset = max(0, min(offset, self.size - 1))
        length = max(1, min(length, self.size - offset))
        return offset, length

    def pattern(self):
        # 0 sometimes: data that happens to be zeros is still data.
        return 0 if self.rng.random() < 0.05 else self.rng.randint(1, 255)

    def check(self, offset, length, aio=False):
        """Reads back [offset, offset + length) as pattern checks."""
        for pos, n, value in self.contents.runs(offset, offset + length):
            if aio:
                self.emit(f"aio_read -q -P {value} {pos} {n}")
            elif self.rng.random() < 0.2 and n > 1:
                half = self.rng.randint(1, n - 1)
                self.emit(f"readv -q -P {value} {pos} {half} {n - half}")
            else:
                self.emit(f"read -q -P {value} {pos} {n}")

    def write(self):
        offset, length = self.pick_range()
        value = self.pattern()
        fua = " -f" if self.rng.random() < 0.05 else ""
        self.emit(f"write{fua} -P {value} {offset} {length}")
        self.contents.fill(offset, offset + length, value)

    def writev(self):
        offset, length = self.pick_range()
        value = self.pattern()
        cuts = sorted(self.rng.sample(range(1, length), min(2, length - 1))) if length > 2 else []
        parts = [b - a for a, b in zip([0] + cuts, cuts + [length])]
        self.emit(f"writev -P {value} {offset} " + " ".join(map(str, parts)))
        self.contents.fill(offset, offset + length, value)

    def zero(self):
        offset, length = self.pick_range(max_clusters=6)
        unmap = " -u" if self.rng.random() < 0.5 else ""
        self.emit(f"write -z{unmap} {offset} {length}")
        self.contents.fill(offset, offset + length, 0)

    def discard(self):
        offset, length = self.pick_range(max_clusters=6)
        self.emit(f"discard {offset} {length}")
        self.contents.fill(offset, offset + length, 0)

    def read(self):
        offset, length = self.pick_range()
        self.check(offset, length)

    def dump(self):
        """A small hex dump: the two tools' dumps are compared line by line."""
        offset, length = self.pick_range()
        self.emit(f"read -v {offset} {min(length, 48)}")

    def aio_writes(self):
        """Non-overlapping concurrent writes, so their order does not matter."""
        taken = []
        for _ in range(self.rng.randint(2, 8)):
            offset, length = self.pick_range(max_clusters=3)
            if any(offset < e and s < offset + length for s, e in taken):
                continue
            taken.append((offset, offset + length))
            if self.rng.random() < 0.25:
                self.emit(f"aio_write -q -z {offset} {length}")
                self.contents.fill(offset, offset + length, 0)
            else:
                value = self.pattern()
                self.emit(f"aio_write -q -P {value} {offset} {length}")
                self.contents.fill(offset, offset + length, value)
        self.emit("aio_flush")
        for s, e in taken:
            self.check(s, e - s)

    def aio_storm(self):
        """Many small concurrent writes packed into a few clusters, so that
        several of them allocate the same cluster or L2 table at once."""
        c = self.cluster
        start = max(0, min(self.rng.choice(self.spots) + self.rng.randint(-2, 1) * c,
                           self.size - 1))
        end = min(self.size, start + self.rng.randint(1, 4) * c)
        cuts = sorted(self.rng.sample(range(start + 1, end), min(31, end - start - 1)))
        bounds = [start] + cuts + [end]
        pieces = [(a, b) for a, b in zip(bounds, bounds[1:]) if self.rng.random() < 0.8]
        self.rng.shuffle(pieces)
        for a, b in pieces:
            value = self.pattern()
            self.emit(f"aio_write -q -P {value} {a} {b - a}")
            self.contents.fill(a, b, value)
        self.emit("aio_flush")
        self.check(start, end - start)

    def aio_reads(self):
        for _ in range(self.rng.randint(2, 6)):
            offset, length = self.pick_range()
            self.check(offset, length, aio=True)
        self.emit("aio_flush")

    def run(self, nops):
        ops = [
            (self.write, 30), (self.writev, 4), (self.zero, 14), (self.discard, 10),
            (self.read, 24), (self.dump, 3), (self.aio_writes, 5), (self.aio_storm, 3),
            (self.aio_reads, 4),
            (lambda: self.emit("flush"), 2),
        ]
        funcs = [f for f, _ in ops]
        weights = [w for _, w in ops]
        for _ in range(nops):
            self.rng.choices(funcs, weights)[0]()
        # Finally read back every region the workload touched.
        for spot in self.spots:
            start = max(0, spot - 4 * self.cluster)
            self.check(start, min(self.size, spot + 4 * self.cluster) - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seed", type=int)
    ap.add_argument("outdir")
    ap.add_argument("--ops", type=int, default=600)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    # The seed picks the layout, so consecutive seeds cover all six
    # combinations of cluster size and backing kind, and every six seeds
    # the cache mode qed-io opens the image with changes.
    cluster = [4096, 65536][args.seed % 2]
    backing = ["none", "raw", "qed"][args.seed // 2 % 3]
    cache = ["writeback", "none", "writethrough", "writeback"][args.seed // 6 % 4]
    table = rng.choice([2, 4])
    l2_span = table * cluster // 8 * cluster
    # With 4 KiB clusters, 2.5 tables' worth; with 64 KiB ones (256 or 512
    # MiB a table) one table and a bit, so the raw reference stays sparse
    # and small. A few sectors more leave the last cluster partial.
    spans = 2.5 if cluster == 4096 else 1.03
    size = int(l2_span * spans) // cluster * cluster + 512 * rng.randint(0, 7)

    wl = Workload(rng, size, cluster, l2_span)
    base_size = 0
    base_lines = []
    if backing != "none":
        base_size = rng.choice([size, size - 3 * cluster - 512, size + cluster])
        base = Workload(rng, base_size, cluster, l2_span)
        base.spots = [s for s in wl.spots if s <= base_size] + [base_size]
        for _ in range(40):
            offset, length = base.pick_range(max_clusters=6)
            value = rng.randint(1, 255)
            base_lines.append(f"write -q -P {value} {offset} {length}")
            wl.contents.fill(offset, offset + length, value)
    wl.run(args.ops)

    with open(os.path.join(args.outdir, "base.cmds"), "w") as f:
        f.write("".join(line + "\n" for line in base_lines))
    with open(os.path.join(args.outdir, "ops.cmds"), "w") as f:
        f.write("".join(line + "\n" for line in wl.lines))
    print(f"CLUSTER={cluster} TABLE={table} SIZE={size} BACKING={backing}"
          f" BASE_SIZE={base_size} CACHE={cache}")


if __name__ == "__main__":
    main()
