#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Repairs every leaky or corrupt image of the corpus with `qed-img check -r
all` and `-r leaks`, and checks the result.

    run-repair.py CORPUS_DIR QED_IMG QED_IO

-r all: the repair reports what it fixed, the image then checks clean with
qed-img (exit 0) and with qemu-img (what the reference model predicts for
QEMU: clean, but for QEMU's false leaks), the file is no longer than before,
NEED_CHECK is cleared, and every cluster reads, through qed-io and through
qemu-io, what it read before, or zeros where the repair cleared a bad
reference (qed_model.py kept). A second repair finds nothing to do.
-r leaks: corruptions stay (exit 2 when there were any; but a file cut inside
its last cluster grows to whole clusters, which repairs the references into
it), leaks at the end of the file go, and every cluster that read before
reads the same.
Ends with "N passed, N failed".
"""
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qed_model  # noqa: E402

_spec = importlib.util.spec_from_file_location('run_corpus', os.path.join(HERE, 'run-corpus.py'))
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def model(cmd, path, *extra):
    out = subprocess.run([sys.executable, qed_model.__file__, cmd, path] + list(extra),
                         capture_output=True, check=True).stdout
    return json.loads(out)


def read_cluster(tool, d, img, offset, cs):
    """sha256 of what tool (qed-io or qemu-io) reads, or None on failure."""
    rc, out, _ = corpus.run([tool, '-r', '-f', 'qed', '-c', 'read -v %d %d' % (offset, cs), img],
                            d)
    if rc != 0:
        return None
    data = bytearray()
    for line in out.split(b'\n'):
        colon = line.find(b':  ')
        if colon >= 8 and line[:colon].isalnum():
            data += bytes.fromhex(line[colon + 3:colon + 3 + 48].decode())
    return hashlib.sha256(bytes(data)).hexdigest()


def qemu_check(d, img, backing):
    target = img
    if backing:
        target = 'json:' + json.dumps({'driver': 'qed', 'backing': None,
                                       'file': {'driver': 'file', 'filename': img}})
    rc, out, _ = corpus.run(['qemu-img', 'check', '--output=json', target], d)
    result = {'rc': rc}
    if rc in (0, 2, 3):
        result.update(corpus.counts(out))
    return result


def repair_all(case, d, qed_img, qed_io):
    src = os.path.join(d, case.name + '.qed')
    img = case.name + '.all.qed'
    path = os.path.join(d, img)
    shutil.copyfile(src, path)
    kept = model('kept', path)
    cs = kept['cluster_size']
    size_before = os.path.getsize(path)
    rc, out, err = corpus.run([qed_img, 'check', '-r', 'all', img], d)
    if rc != 0:
        case.fail('check -r all exited %s: %s%s' % (rc, out.decode(), err.decode()))
        return
    if b'were found and repaired' not in out:
        case.fail('check -r all reported no repair:\n' + out.decode())
    rc, out, _ = corpus.run([qed_img, 'check', '-r', 'all', img], d)
    if rc != 0 or b'repaired' in out:
        case.fail('a second repair was not a no-op (%s): %s' % (rc, out.decode()))
    want = corpus.side(model('check', path)['qemu'])
    got = qemu_check(d, img, 'backing' in case.tags)
    if got != want or (got['rc'] != 0 and 'known:false-leaks' not in case.tags):
        case.fail('after -r all, qemu-img check says %s (the model: %s)' % (got, want))
    # A file cut inside its last cluster grows to whole clusters, no more.
    if os.path.getsize(path) > -(-size_before // cs) * cs:
        case.fail('the file grew from %d to %d bytes' % (size_before, os.path.getsize(path)))
    if qed_model.Image(path).features & qed_model.F_NEED_CHECK:
        case.fail('NEED_CHECK is still set')
    if qed_model.Image(path).features & qed_model.F_BACKING:
        return  # qed-io and qemu-io would open the backing file
    for offset, want_sha in list(kept['kept'].items())[:48]:
        for tool in (qed_io, 'qemu-io'):
            got_sha = read_cluster(tool, d, img, int(offset), cs)
            if got_sha != want_sha:
                case.fail('after -r all, %s reads other data at %s' % (tool, offset))


def repair_leaks(case, d, qed_img, qed_io, before):
    src = os.path.join(d, case.name + '.qed')
    img = case.name + '.leaks.qed'
    path = os.path.join(d, img)
    shutil.copyfile(src, path)
    reads = model('reads', path, '48')
    size_before = os.path.getsize(path)
    rc, out, err = corpus.run([qed_img, 'check', '-r', 'leaks', img], d)
    # Growing a file cut inside its last cluster repairs the references
    # into that cluster (any writable open grows it); no other corruption
    # goes away under -r leaks.
    partial = size_before % cs_of(path) != 0
    if not partial and (before['corruptions'] and rc != 2 or
                        not before['corruptions'] and rc not in (0, 3)):
        case.fail('check -r leaks exited %s: %s%s' % (rc, out.decode(), err.decode()))
    after = corpus.side(model('check', path)['ours'])
    if after['rc'] != rc:
        case.fail('check -r leaks exited %s; the model says %s' % (rc, after))
    if not partial and after['rc'] != 1 and after['corruptions'] != before['corruptions']:
        case.fail('-r leaks changed the corruptions: %s -> %s' % (before, after))
    if os.path.getsize(path) >= size_before + cs_of(path):
        case.fail('-r leaks grew the file')
    want = corpus.side(model('check', path)['qemu'])
    got = qemu_check(d, img, 'backing' in case.tags)
    if got != want:
        case.fail('after -r leaks, qemu-img check says %s (the model: %s)' % (got, want))
    if qed_model.Image(path).features & qed_model.F_BACKING:
        return
    for r in reads['reads']:
        if r['expect'] != 'error' and \
                read_cluster(qed_io, d, img, r['offset'], reads['cluster_size']) != r['expect']:
            case.fail('after -r leaks, qed-io reads other data at %d' % r['offset'])


def cs_of(path):
    return qed_model.Image(path).cs


def check_case(case, d, qed_img, qed_io):
    before = model('check', os.path.join(d, case.name + '.qed'))['ours']
    repair_all(case, d, qed_img, qed_io)
    repair_leaks(case, d, qed_img, qed_io, before)


def main():
    d, qed_img, qed_io = sys.argv[1:4]
    with open(os.path.join(d, 'MANIFEST')) as f:
        entries = [line.rstrip('\n').split('\t') for line in f if line.strip()]
    cases = []
    for name, tags, what in entries:
        m = qed_model.check(qed_model.Image(os.path.join(d, name + '.qed')), False)
        if m['rc'] in (2, 3):
            cases.append(corpus.Case(name, [] if tags == '-' else tags.split(','), what, []))
    print('repairing %d leaky or corrupt images of %d' % (len(cases), len(entries)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda c: check_case(c, d, qed_img, qed_io), cases))
    passed = failed = 0
    for case in cases:
        if case.problems:
            failed += 1
            print('FAIL %s (%s)' % (case.name, case.what))
            for p in case.problems:
                print('    ' + p.replace('\n', '\n    '))
        else:
            passed += 1
            print('ok   %s' % case.name)
    print('%d passed, %d failed' % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
