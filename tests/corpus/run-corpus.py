#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs `qed-img check` and `qemu-img check` over the corpus that
make-corpus.py built, and the reference model (qed_model.py) beside them.

    run-corpus.py CORPUS_DIR QED_IMG QED_IO

For every image, human and JSON output, probed and with -f qed:
  - qed-img's exit status and counts are what the model predicts for libqed,
    and qemu-img's what it predicts for QEMU 7.2;
  - where the two differ, the image carries a known:WHY tag (and where it
    carries one, they do differ): each difference is a documented one;
  - where they agree, stdout is byte for byte the same;
  - no run crashes or hangs (every tool runs under a timeout);
  - a plain check leaves the file as it was;
  - reads through qed-io return, for every cluster a read can reach, the
    bytes of the cluster its reference names, or fail where the reference
    is invalid: never data from outside the image's clusters;
  - `map` walks the whole disk without crashing or hanging.
Images whose backing file qemu-img cannot open are checked by QEMU with
backing=null as well, and the plain qemu-img check must fail on them.
Ends with "N passed, N failed".
"""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qed_model  # noqa: E402

TIMEOUT = 60
COUNTS = ('corruptions', 'leaks', 'allocated-clusters', 'fragmented-clusters',
          'total-clusters')


def run(argv, cwd, timeout=TIMEOUT):
    try:
        p = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, b'', b'timed out'
    return p.returncode, p.stdout, p.stderr


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def counts(stdout):
    try:
        j = json.loads(stdout)
    except ValueError:
        return None
    return {k: j.get(k, 0) for k in COUNTS}


def side(result):
    """rc and counts of the model's prediction or of a run."""
    return {k: result.get(k, 0) for k in ('rc',) + COUNTS} if result.get('rc') != 1 \
        else {'rc': 1}


class Case:
    def __init__(self, name, tags, what, problems):
        self.name, self.tags, self.what, self.problems = name, tags, what, problems
        self.notes = []

    def fail(self, msg):
        self.problems.append('%s: %s' % (self.name, msg))


def check_image(case, d, qed_img, qed_io):
    img = case.name + '.qed'
    path = os.path.join(d, img)
    before = sha(path)
    model = json.loads(subprocess.run([sys.executable, qed_model.__file__, 'check', path],
                                      capture_output=True, check=True).stdout)
    known = [t for t in case.tags if t.startswith('known:')]
    backing = 'backing' in case.tags
    null = 'json:' + json.dumps({'driver': 'qed', 'backing': None,
                                 'file': {'driver': 'file', 'filename': img}})
    got = {}
    for fmt in ([], ['-f', 'qed']):
        for out in ([], ['--output=json']):
            ours = run([qed_img, 'check'] + fmt + out + [img], d)
            qemu = run(['qemu-img', 'check'] + fmt + out + [null if backing else img], d)
            for who, r in (('qed-img', ours), ('qemu-img', qemu)):
                if r[0] is None or r[0] < 0 or r[0] > 63 and r[0] != 63:
                    case.fail('%s check %s: crashed or hung (%s)' % (who, ' '.join(fmt + out),
                                                                     r[0]))
            if ours[0] is None or qemu[0] is None:
                continue
            key = 'probe' if not fmt else 'qed'
            if out:
                got[key] = (ours, qemu)
            if not known and ours[0] == qemu[0] and ours[1] != qemu[1] and not backing:
                case.fail('check %s: stdout differs:\n--- qemu-img\n%s--- qed-img\n%s' %
                          (' '.join(fmt + out), qemu[1].decode(errors='replace'),
                           ours[1].decode(errors='replace')))
    if sha(path) != before:
        case.fail('a plain check changed the file')

    # With -f qed the model's view is the one to compare (a probed image
    # that is not QED is raw: both say 63).
    for key, (ours, qemu) in got.items():
        results = {}
        for who, r in (('ours', ours), ('qemu', qemu)):
            rc = r[0]
            if rc in (0, 2, 3):
                c = counts(r[1])
                results[who] = dict(rc=rc, **(c or {}))
            else:
                results[who] = {'rc': rc}
        want = {w: side(model[w]) for w in ('ours', 'qemu')}
        if key == 'probe' and model['ours'].get('error') == 'magic':
            want = {'ours': {'rc': 63}, 'qemu': {'rc': 63}}
        for w in ('ours', 'qemu'):
            if results[w] != want[w]:
                case.fail('%s (%s): got %s, the model says %s' % (
                    'qed-img' if w == 'ours' else 'qemu-img', key, results[w], want[w]))
        differ = results['ours'] != results['qemu']
        if differ and not known:
            case.fail('%s: qed-img %s and qemu-img %s differ, and no known: tag says why' %
                      (key, results['ours'], results['qemu']))
        if known and key == 'qed' and not differ:
            case.fail('tagged %s, but both report %s' % (','.join(known), results['ours']))
        if known and key == 'qed' and differ:
            case.notes.append('known difference (%s) on %s: qed-img %s, qemu-img %s' % (
                ','.join(known), case.name, results['ours'], results['qemu']))

    if backing:
        # qemu-img opens the backing file; an image that names itself keeps
        # it busy for minutes, so it gets 10 seconds.
        rc, _, err = run(['qemu-img', 'check', img], d, timeout=10)
        ours_rc = got.get('qed', ((None,),))[0][0]
        if rc is None:
            case.notes.append('known difference (backing file opened) on %s: qemu-img check '
                              'did not finish in 10 s' % case.name)
        elif rc == 1 and ours_rc != 1:
            case.notes.append('known difference (backing file opened) on %s: qemu-img: %s' %
                              (case.name, err.decode(errors='replace').strip()[:160]))

    # Reads, for images without a backing file (qed-io would open it).
    if not (qed_model.Image(path).features & qed_model.F_BACKING):
        probe = json.loads(subprocess.run(
            [sys.executable, qed_model.__file__, 'reads', path, '16'],
            capture_output=True, check=True).stdout)
        cs = probe['cluster_size']
        for r in probe['reads']:
            rc, out, err = run([qed_io, '-r', '-f', 'qed', '-c',
                                'read -v %d %d' % (r['offset'], cs), img], d)
            if rc is None or rc < 0:
                case.fail('qed-io read at %d crashed or hung' % r['offset'])
                continue
            if r['expect'] == 'error':
                if rc == 0:
                    case.fail('read at %d succeeded through an invalid reference' %
                              r['offset'])
                continue
            data = bytearray()
            for line in out.split(b'\n'):
                colon = line.find(b':  ')
                if colon >= 8 and line[:colon].isalnum():  # "%08x:  xx xx ...  text"
                    data += bytes.fromhex(line[colon + 3:colon + 3 + 48].decode())
            if rc != 0 or hashlib.sha256(bytes(data)).hexdigest() != r['expect']:
                case.fail('read at %d (status %s) returned other bytes than the cluster its '
                          'reference names' % (r['offset'], rc))
        rc, _, _ = run([qed_io, '-r', '-f', 'qed', '-c', 'map', img], d)
        if rc is None or rc < 0:
            case.fail('qed-io map crashed or hung')
    if sha(path) != before:
        case.fail('reading changed the file')


def main():
    d, qed_img, qed_io = sys.argv[1:4]
    with open(os.path.join(d, 'MANIFEST')) as f:
        entries = [line.rstrip('\n').split('\t') for line in f if line.strip()]
    print('corpus: %d images' % len(entries))
    cases = [Case(name, [] if tags == '-' else tags.split(','), what, [])
             for name, tags, what in entries]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda c: check_image(c, d, qed_img, qed_io), cases))
    passed = failed = 0
    for case in cases:
        for note in case.notes:
            print('  ' + note)
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
