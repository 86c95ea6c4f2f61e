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
