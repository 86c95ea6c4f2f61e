#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
# The arithmetic of bench/run.sh, which calls it:
#   run-helper.py strace FILE           the writes and flushes an `strace -f`
#                                       log shows: "WRITES FLUSHES URING"
#   run-helper.py stats FILE            what `qed-img bench --stats` printed:
#                                       "WRITES FLUSHES" per request, or "- -"
#   run-helper.py report TSV JSON META  the table (stdout) and JSON (to JSON)
#
# The TSV has one measurement a line: KIND WORKLOAD COLUMN REP VALUE, where
# KIND is "time" (seconds), "iops_w"/"iops_r" (W8), "rss" (KiB, M1),
# "wpr"/"fpr" (writes/flushes per request, strace), "owpr"/"ofpr" (the same
# from qed-img's --stats), "alloc" (W8: fraction of writes that allocated),
# "note" (free text), "size" (R1: bytes read per run).
import json
import re
import statistics
import sys

# Writes: the pwrite family, and each write iocb of io_submit (its calls may
# carry several). Flushes: fdatasync/fsync, and the fsync iocbs.
WRITE_CALLS = {"pwrite64", "pwritev", "pwritev2", "write_zeroes"}
FLUSH_CALLS = {"fdatasync", "fsync"}
LINE = re.compile(r"^(?:\[pid\s+)?\d*\]?\s*([a-z0-9_]+)\((.*)")


def strace_counts(path):
    writes = flushes = uring = 0
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue  # "<... resumed>", signals, exits: counted at the start
            name, rest = m.group(1), m.group(2)
            if name in WRITE_CALLS:
                writes += 1
            elif name in FLUSH_CALLS:
                flushes += 1
            elif name == "io_submit":
                writes += len(re.findall(r"IOCB_CMD_PWRITEV?\b", rest))
                flushes += len(re.findall(r"IOCB_CMD_F(?:DATA)?SYNC\b|IOCB_CMD_FDSYNC\b", rest))
            elif name == "io_uring_enter":
                uring += 1  # its SQEs are not visible to strace
    return writes, flushes, uring


def ours_stats(path):
    """writes_per_request and flushes_per_request of `qed-img bench --stats`
    (its "name: value" lines, from qed_get_stats)."""
    got = {}
    with open(path, errors="replace") as fh:
        for line in fh:
            m = re.match(r"^\s*(writes_per_request|flushes_per_request):\s*([\d.]+)", line)
            if m:
                got[m.group(1)] = m.group(2)
    return got.get("writes_per_request", "-"), got.get("flushes_per_request", "-")


# Targets of the issue: (text, check(values) -> True/False/None).
def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def target(wl, v):
    raw, qcow2, qed, ours = (v.get(c) for c in ("raw", "qcow2", "qemu-qed", "ours"))
    r = ratio(ours, raw)
    q = ratio(qed, ours)
    if wl == "W1":
        return "<= 1.3x raw; >= 4x faster than qemu qed", \
            None if r is None or q is None else r <= 1.3 and q >= 4
    if wl == "W1b":
        return "<= 2x raw", None if r is None else r <= 2
    if wl == "W2":
        return "<= 1.15x raw", None if r is None else r <= 1.15
    if wl == "W3":
        return "<= 1.3x raw; faster than qcow2", \
            None if r is None or qcow2 is None else r <= 1.3 and ours < qcow2
    if wl == "W4":
        return "<= 1.05x raw", None if r is None else r <= 1.05
    if wl == "W5":
        return "<= 1.1x raw", None if r is None else r <= 1.1
    if wl in ("W6", "W7"):
        return "<= qemu-img", None if ours is None or qed is None else ours <= qed
    return "", None


def median_of(rows, kind, wl, col):
    vals = [float(r[4]) for r in rows if r[0] == kind and r[1] == wl and r[2] == col]
    return (statistics.median(vals), len(vals)) if vals else (None, 0)


def first_of(rows, kind, wl, col):
    for r in rows:
        if r[0] == kind and r[1] == wl and r[2] == col:
            return r[4]
    return None


def fmt(x, unit=""):
    if x is None:
        return "-"
    return f"{x:.3f}{unit}" if x < 100 else f"{x:.0f}{unit}"


def report(tsv, json_path, meta):
    rows = [line.rstrip("\n").split("\t", 4) for line in open(tsv) if line.strip()]
    wls = []
    for r in rows:
        if r[1] not in wls:
            wls.append(r[1])
    cols = ["raw", "qcow2", "qemu-qed", "ours"]
    out = {"conditions": meta, "workloads": {}}
    print(f"== {meta}")
    timed = [wl for wl in wls if not wl.startswith(("W8", "M1", "R1"))]
    if timed:
        print()
        print("times in seconds, median of the repetitions (n); ours = qed-img on qed")
    hdr = f"{'id':5} {'raw':>9} {'qcow2':>9} {'qemu-qed':>9} {'ours':>9} {'n':>2}" \
          f" {'ours/raw':>9} {'qemu/ours':>9}  {'target':38} met"
    if timed:
        print(hdr)
        print("-" * len(hdr))
    stat_lines, notes = [], []
    for wl in timed:
        v, n = {}, 0
        for c in cols:
            v[c], k = median_of(rows, "time", wl, c)
            n = max(n, k)
        if n == 0:
            continue
        r, q = ratio(v["ours"], v["raw"]), ratio(v["qemu-qed"], v["ours"])
        text, met = target(wl, v)
        print(f"{wl:5} " + " ".join(f"{fmt(v[c]):>9}" for c in cols) +
              f" {n:>2} {fmt(r):>9} {fmt(q):>9}  {text:38} "
              f"{'-' if met is None else 'yes' if met else 'NO'}")
        entry = {"seconds": v, "reps": n, "ours_over_raw": r, "qemu_qed_over_ours": q,
                 "target": text, "met": met, "io": {}}
        for c in cols:
            wpr, fpr = first_of(rows, "wpr", wl, c), first_of(rows, "fpr", wl, c)
            owpr, ofpr = first_of(rows, "owpr", wl, c), first_of(rows, "ofpr", wl, c)
            if wpr is None and owpr is None:
                continue
            entry["io"][c] = {"strace_writes": wpr, "strace_flushes": fpr,
                              "stats_writes": owpr, "stats_flushes": ofpr}
            s = f"  {wl:5} {c:9} strace: {wpr or '-':>8} writes {fpr or '-':>8} flushes"
            if owpr is not None:
                s += f"   qed_get_stats: {owpr:>8} writes {ofpr:>8} flushes"
            stat_lines.append(s)
        for note in [r[4] for r in rows if r[0] == "note" and r[1] == wl]:
            entry.setdefault("notes", []).append(note)
            notes.append(f"  {wl}: {note}")
        out["workloads"][wl] = entry
    if notes:
        print("\n".join(notes))
    if stat_lines:
        print()
        print("I/O per request (W6: per run) of one extra run of each, untimed:")
        print("\n".join(stat_lines))

    w8 = [wl for wl in wls if wl == "W8"]
    if w8:
        print()
        print("W8: fio nbd engine, 4 KiB, iodepth 16; IOPS, median of the repetitions")
        print(f"  {'server':10} {'randwrite':>10} {'randread':>10} {'allocated':>10}  notes")
        servers = ["ours", "qemu-qed", "raw"]
        names = {"ours": "nbdkit qed cache=none", "qemu-qed": "qemu-nbd -f qed --cache=none",
                 "raw": "qemu-nbd -f raw --cache=none"}
        e = {"servers": {}}
        for c in servers:
            w, n = median_of(rows, "iops_w", "W8", c)
            rd, _ = median_of(rows, "iops_r", "W8", c)
            al, _ = median_of(rows, "alloc", "W8", c)
            notes = sorted({r[4] for r in rows if r[0] == "note" and r[1] == "W8" and r[2] == c})
            if n == 0:
                continue
            e["servers"][c] = {"name": names[c], "write_iops": w, "read_iops": rd,
                               "allocated_fraction": al, "reps": n, "notes": notes}
            print(f"  {c:10} {fmt(w):>10} {fmt(rd):>10} {fmt(al):>10}  {names[c]}"
                  + (f"; {'; '.join(notes)}" if notes else ""))
        s = e["servers"]
        ow = s.get("ours", {}).get("write_iops")
        qw = s.get("qemu-qed", {}).get("write_iops")
        rw = s.get("raw", {}).get("write_iops")
        met = None
        if ow and qw and rw:
            met = ow >= 3 * qw and ow >= 0.8 * rw
        e.update(target="write IOPS >= 3x qemu-nbd qed and >= 0.8x qemu-nbd raw", met=met,
                 ours_over_qemu_qed=ratio(ow, qw), ours_over_raw=ratio(ow, rw))
        print(f"  ours/qemu-qed {fmt(ratio(ow, qw))}  ours/raw {fmt(ratio(ow, rw))}"
              f"  target: {e['target']}: {'-' if met is None else 'yes' if met else 'NO'}")
        out["workloads"]["W8"] = e

    m1 = [wl for wl in wls if wl.startswith("M1")]
    if m1:
        print()
        print("M1: peak RSS (MiB; median of the repetitions)")
        for wl in m1:
            o, n = median_of(rows, "rss", wl, "ours")
            q, _ = median_of(rows, "rss", wl, "qemu-qed")
            budget = float(first_of(rows, "budget", wl, "ours") or 0)
            limit = budget + 16 * 1024
            t, _ = median_of(rows, "time", wl, "ours")
            qt, _ = median_of(rows, "time", wl, "qemu-qed")
            met = None if o is None else o <= limit
            notes = [r[4] for r in rows if r[0] == "note" and r[1] == wl]
            print(f"  {wl:4} ours {fmt(o and o / 1024)} MiB ({fmt(t)} s)"
                  f"   qemu-io {fmt(q and q / 1024)} MiB ({fmt(qt)} s)"
                  f"   target <= {limit / 1024:.0f} MiB (cache budget + 16 MiB):"
                  f" {'-' if met is None else 'yes' if met else 'NO'}")
            for note in notes:
                print(f"       {note}")
            out["workloads"][wl] = {"rss_kib": {"ours": o, "qemu-io": q},
                                    "seconds": {"ours": t, "qemu-io": qt},
                                    "limit_kib": limit, "reps": n, "met": met, "notes": notes}
    r1 = [wl for wl in wls if wl.startswith("R1")]
    if r1:
        report_r1(rows, r1, out)
    with open(json_path, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


R1_COLS = {
    "ours": "qed-img convert -O raw overlay.qed OUT",
    "qemu": "qemu-img convert -O raw overlay.qed OUT",
    "ours-nbd": "nbdcopy from nbdkit qed overlay.qed backing-remote=true to null:",
    "qemu-nbd": "nbdcopy from qemu-nbd -r -f qed overlay.qed to null:",
    "nbdcopy": "nbdcopy from the golden server to null: (the ceiling)",
    "nbdcopy-out": "nbdcopy from the golden server to OUT (the converts' ceiling)",
}
R1_NAMES = {"R1u": "Unix socket", "R1t": "TCP 127.0.0.1"}


def report_r1(rows, wls, out):
    """R1: MiB/s of each column (the golden image's size over the median
    time) and the ratios of throughput, ours over qemu's and over nbdcopy's."""
    print()
    print("R1: sequential read of a golden raw image (nbdkit file) through an empty local")
    print("QED overlay backed by its NBD URI; MiB/s, from the median time (s) of the")
    print("repetitions; ratios are of throughput (above 1: ours is faster)")
    for wl in wls:
        size = float(first_of(rows, "size", wl, "golden") or 0)
        print(f"  {wl} ({R1_NAMES.get(wl, wl)}, {size / 2**20:.0f} MiB):")
        e = {"bytes": size, "columns": {}}
        mibs = {}
        for c, name in R1_COLS.items():
            t, n = median_of(rows, "time", wl, c)
            if n == 0:
                continue
            mibs[c] = size / 2**20 / t if t else None
            notes = sorted({r[4] for r in rows if r[0] == "note" and r[1] == wl and r[2] == c})
            e["columns"][c] = {"command": name, "seconds": t, "mib_per_s": mibs[c], "reps": n,
                               "notes": notes}
            print(f"    {c:11} {fmt(mibs[c]):>7} MiB/s {fmt(t):>7} s (n={n})  {name}"
                  + (f"; {'; '.join(notes)}" if notes else ""))
        e["ratios"] = {
            "ours/qemu-img": ratio(mibs.get("ours"), mibs.get("qemu")),
            "ours/nbdcopy": ratio(mibs.get("ours"), mibs.get("nbdcopy")),
            "ours/nbdcopy-out": ratio(mibs.get("ours"), mibs.get("nbdcopy-out")),
            "ours-nbd/qemu-nbd": ratio(mibs.get("ours-nbd"), mibs.get("qemu-nbd")),
            "ours-nbd/nbdcopy": ratio(mibs.get("ours-nbd"), mibs.get("nbdcopy")),
        }
        print("    " + "  ".join(f"{k} {fmt(v)}" for k, v in e["ratios"].items()))
        out["workloads"][wl] = e


def main():
    cmd = sys.argv[1]
    if cmd == "strace":
        print(*strace_counts(sys.argv[2]))
    elif cmd == "stats":
        print(*ours_stats(sys.argv[2]))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"run-helper.py: unknown command {cmd}")


if __name__ == "__main__":
    main()
