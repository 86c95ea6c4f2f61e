# SPDX-License-Identifier: LGPL-2.1-or-later
# Helpers for the nbdkit plugin tests (sourced after functions.sh).

requires nbdkit
if [ -z "${NBDKIT_QED_PLUGIN:-}" ] || [ ! -f "$NBDKIT_QED_PLUGIN" ]; then
    echo "SKIP: the nbdkit qed plugin was not built (nbdkit-plugin-dev missing?)" >&2
    exit 77
fi
SOCK=$T/nbd.sock
URI="nbd+unix:///?socket=$SOCK"

# Serves a QED image (and any further plugin parameters) on $SOCK.
serve_qed() {
    start_nbdkit "$SOCK" "$NBDKIT_QED_PLUGIN" "$@"
}

# Prints an allocation map as "start length data|zero" lines with adjacent
# ranges of one kind merged, from qemu-img map --output=json on stdin.
map_from_qemu_json() {
    python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    kind = "data" if e["data"] else "zero"
    if out and out[-1][2] == kind and out[-1][0] + out[-1][1] == e["start"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["start"], e["length"], kind])
for s, l, k in out:
    print(s, l, k)
'
}

# The same from nbdinfo --map --json on stdin (type 0 is data; bit 1 is zero).
map_from_nbdinfo_json() {
    python3 -c '
import json, sys
out = []
for e in json.load(sys.stdin):
    kind = "zero" if e["type"] & 2 else "data"
    if out and out[-1][2] == kind and out[-1][0] + out[-1][1] == e["offset"]:
        out[-1][1] += e["length"]
    else:
        out.append([e["offset"], e["length"], kind])
for s, l, k in out:
    print(s, l, k)
'
}

# The path of the built filter.
FILTER=$(dirname "$NBDKIT_QED_PLUGIN")/nbdkit-qed-filter.so

# nbdkit_refuses TEXT NBDKIT-ARGS...: nbdkit in the foreground must exit
# nonzero at startup, within 20 seconds, with TEXT (a grep pattern) in its
# output, which is left in $T/refusal.txt.
#
# With the ASan runtime preloaded, nbdkit's exit after an error can deadlock
# (stop_nbdkit in functions.sh), with the error printed and the status
# decided: there a process still alive a second after printing its error is
# killed and counted as exited nonzero.
nbdkit_refuses() {
    _text=$1
    shift
    exec_nbdkit -f -U "$T/never.sock" "$@" >"$T/refusal.txt" 2>&1 &
    _pid=$!
    _i=0
    _errored=0
    while alive "$_pid" && [ "$_i" -lt 200 ]; do
        if [ -n "${NBDKIT_PRELOAD:-}" ] && grep -q "error:" "$T/refusal.txt"; then
            _errored=$((_errored + 1))
            [ "$_errored" -le 10 ] || break
        fi
        _i=$((_i + 1))
        sleep 0.1
    done
    if alive "$_pid"; then
        kill -9 "$_pid"
        wait "$_pid" 2>/dev/null || true
        rm -f "$T/never.sock"
        [ "$_errored" -gt 0 ] || fail "nbdkit $* still runs after 20 s: $(cat "$T/refusal.txt")"
    else
        set +e
        wait "$_pid"
        _status=$?
        set -e
        rm -f "$T/never.sock"
        [ "$_status" -ne 0 ] || fail "nbdkit exited 0 with $*: $(cat "$T/refusal.txt")"
    fi
    grep -q -- "$_text" "$T/refusal.txt" ||
        fail "no '$_text' from nbdkit $*: $(cat "$T/refusal.txt")"
}

# set_header_bits FILE FEATURES AUTOCLEAR: ORs the bits into the header's
# feature and autoclear fields, as a crash or an older program leaves them.
set_header_bits() {
    python3 - "$@" <<'PY'
import struct, sys
path, features, autoclear = sys.argv[1], int(sys.argv[2], 0), int(sys.argv[3], 0)
with open(path, "r+b") as f:
    h = bytearray(f.read(40))
    struct.pack_into("<Q", h, 16, struct.unpack_from("<Q", h, 16)[0] | features)
    struct.pack_into("<Q", h, 32, struct.unpack_from("<Q", h, 32)[0] | autoclear)
    f.seek(0)
    f.write(h)
PY
}

# header_bits FILE: prints the header's feature and autoclear fields in hex.
header_bits() {
    python3 -c '
import struct, sys
h = open(sys.argv[1], "rb").read(40)
print(hex(struct.unpack_from("<Q", h, 16)[0]), hex(struct.unpack_from("<Q", h, 32)[0]))
' "$1"
}
