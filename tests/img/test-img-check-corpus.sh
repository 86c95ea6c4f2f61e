#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# qed-img check against qemu-img check on the corrupt-image corpus that
# tests/corpus/make-corpus.py builds from qemu-img-made images: the same exit
# status and counts (human and JSON, probed and -f qed), or a difference the
# image's known: tag names and docs/format.md explains; no crash or hang;
# a plain check changes nothing; reads never return data from outside the
# image's clusters. tests/corpus/run-corpus.py does the comparing, with the
# reference model tests/corpus/qed_model.py.
. "$TESTS_DIR/functions.sh"
requires qemu-img qemu-io python3

python3 "$TESTS_DIR/corpus/make-corpus.py" "$T/corpus"
python3 "$TESTS_DIR/corpus/run-corpus.py" "$T/corpus" "$QED_IMG" "$QED_IO"
