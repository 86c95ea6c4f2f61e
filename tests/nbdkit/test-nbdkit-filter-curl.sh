#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# A golden QED image on a web server: nginx serves the image file as it is,
# and `nbdkit --filter=qed curl url=...` serves its virtual disk, reading the
# file with HTTP Range requests. Read-only (-r), reads equal the local
# file's virtual disk, for an image of ours and one of QEMU's; with
# --filter=cow on top, a client's writes stay in cow's overlay and the file
# on the server never changes. Errors: a URL that 404s, a server that is
# down at start fail with an error naming the URL; one that goes away while
# nbdkit serves fails reads soon (no hang), which work again once it is back.
. "$TESTS_DIR/functions.sh"
. "$TESTS_DIR/nbdkit/nbdkit-common.sh"
requires qemu-img qemu-io nbdinfo nbdcopy sha256sum timeout stdbuf python3
if ! nbdkit curl --version >/dev/null 2>&1; then
    echo "SKIP: nbdkit's curl plugin is not installed" >&2
    exit 77
fi

cd "$T"
mkdir www
# Ours, with the default clusters (64k), written at scattered offsets.
"$QED_IMG" create -q -f qed www/golden.qed 20M
"$QED_IO" -c 'write -q -P 0x11 0 64k' -c 'write -q -P 0x22 1000000 300000' \
    -c 'write -q -P 0x33 9M 1M' -c 'write -q -z 12M 128k' -c 'write -q -P 0x44 19M 1M' \
    -c 'write -q -P 0x55 16777000 1000' www/golden.qed >/dev/null
# QEMU's, with the smallest clusters (4k, an L2 table per 8 MiB): three L2
# tables, many small ranges.
qemu-img create -q -f qed -o cluster_size=4096 www/qemu.qed 20M
qemu-io -f qed -c 'write -q -P 0x66 4096 20000' -c 'write -q -P 0x77 3M 512k' \
    -c 'write -q -P 0x88 9M 64k' -c 'write -q -P 0x99 20955136 16384' www/qemu.qed
for img in golden qemu; do
    qemu-img check -q "www/$img.qed"
done
sum_golden=$(sha256sum <www/golden.qed)
sum_qemu=$(sha256sum <www/qemu.qed)

start_nginx www
access=$T/nginx/access.log

# Read-only: every byte and the allocation map as the local file's.
for img in golden qemu; do
    start_nbdkit "$SOCK" -r --filter="$FILTER" curl url="$HTTP_URL/$img.qed"
    qemu-img compare -q -f raw -F qed "$URI" "www/$img.qed" ||
        fail "$img.qed over HTTP differs from the local file"
    nbdcopy "$URI" "$img.raw"
    qemu-img convert -f qed -O raw "www/$img.qed" "$img.ref"
    assert_same_bytes "$img.raw" "$img.ref"
    nbdinfo --map --json "$URI" | map_from_nbdinfo_json >"$img.map"
    qemu-img map -f qed --output=json "www/$img.qed" | map_from_qemu_json >"$img.map.ref"
    diff -u "$img.map.ref" "$img.map" || fail "$img.qed's map over HTTP differs"
    assert_status 2 nbdinfo --can write "$URI"
    stop_nbdkit
done
# The same over TCP, nbdkit on a free localhost port.
start_nbdkit_tcp -r --filter="$FILTER" curl url="$HTTP_URL/golden.qed"
qemu-img compare -q -f raw -F qed "$NBDKIT_TCP_URI" www/golden.qed ||
    fail "golden.qed over HTTP and NBD on TCP differs from the local file"
stop_nbdkit
# The file was read in ranges, not fetched whole.
grep -q '"GET /golden.qed HTTP/1.1" 206 ' "$access" || fail "no Range request: $(cat "$access")"
grep -q '"GET /golden.qed HTTP/1.1" 200 ' "$access" &&
    fail "golden.qed was downloaded whole: $(cat "$access")"

# cow on top: writes land in cow's overlay, reads see them; the server's
# file is unchanged. The same writes on a local raw copy are the reference.
cat >ops.cmds <<'CMDS'
write -q -P 0xa1 0 4k
write -q -P 0xa2 999000 5000
write -q -P 0xa3 5M 1M
write -q -z 9M 64k
discard -q 19M 64k
write -q -P 0xa4 20967424 4096
CMDS
cp golden.ref ref.raw
qemu-io -f raw ref.raw <ops.cmds >/dev/null
start_nbdkit "$SOCK" --filter=cow --filter="$FILTER" curl url="$HTTP_URL/golden.qed"
qemu-io -f raw "$URI" <ops.cmds >ops.txt 2>&1 || fail "writes through cow failed: $(cat ops.txt)"
grep -q failed ops.txt && fail "writes through cow failed: $(cat ops.txt)"
qemu-img compare -q -f raw -F raw "$URI" ref.raw || fail "reads through cow differ"
qemu-io -f raw -r -c 'read -q -P 0xa3 5M 1M' -c 'read -q -P 0 9M 64k' \
    -c 'read -q -P 0x33 9280k 960k' "$URI" >pattern.txt 2>&1 || fail "cow reads: $(cat pattern.txt)"
grep -q failed pattern.txt && fail "cow reads: $(cat pattern.txt)"
stop_nbdkit
[ "$(sha256sum <www/golden.qed)" = "$sum_golden" ] || fail "golden.qed changed under cow"
grep -qv '"\(GET\|HEAD\) ' "$access" && fail "not only reads reached nginx: $(cat "$access")"

# Without -r or cow the export is writable (the curl plugin can upload),
# and a write fails with the server's refusal (405); the file is unchanged
# and the export still reads. qed-readonly=true makes the export read-only.
start_nbdkit "$SOCK" --filter="$FILTER" curl url="$HTTP_URL/golden.qed"
set +e
qemu-io -f raw -c 'write -q -P 0xee 0 4k' "$URI" >rw.txt 2>&1
status=$?
set -e
grep -q "write failed" rw.txt || fail "a write to the web server did not fail: $(cat rw.txt)"
qemu-img compare -q -f raw -F raw "$URI" golden.ref || fail "reads after a failed write differ"
stop_nbdkit
[ "$(sha256sum <www/golden.qed)" = "$sum_golden" ] || fail "golden.qed changed (status $status)"
start_nbdkit "$SOCK" --filter="$FILTER" curl url="$HTTP_URL/golden.qed" qed-readonly=true
assert_status 2 nbdinfo --can write "$URI"
stop_nbdkit

# A URL that 404s, and no server: nbdkit refuses to start, naming the URL.
nbdkit_refuses "$HTTP_URL/missing.qed.*404" \
    -r --filter="$FILTER" curl url="$HTTP_URL/missing.qed"

# The server goes away while nbdkit serves. A client connected before keeps
# its connection: its reads fail (EIO) soon, nbdkit reporting why, and work
# again once the server is back on its port. A new client is refused meanwhile (nbdkit opens a
# context into the curl plugin for each connection), without hanging.
# wait_for PATTERN FILE: up to 20 s for the line in a process's output.
wait_for() {
    _i=0
    until grep -q "$1" "$2"; do
        _i=$((_i + 1))
        [ "$_i" -lt 200 ] || fail "no '$1' in $2: $(cat "$2")"
        sleep 0.1
    done
}
port=$HTTP_PORT
start_nbdkit "$SOCK" -r --filter="$FILTER" curl url="$HTTP_URL/qemu.qed" 2>nbdkit.txt
mkfifo cmds
timeout 60 stdbuf -oL qemu-io -f raw -r "$URI" <cmds >live.txt 2>&1 &
client=$!
on_exit "kill $client 2>/dev/null"
exec 3>cmds
echo 'read -P 0x66 4096 20000' >&3
wait_for 'read 20000/20000' live.txt
stop_nginx
echo 'read -P 0x77 3M 512k' >&3
wait_for 'read failed: Input/output error' live.txt
wait_for "port $port.*connect\|connect.*port $port" nbdkit.txt
wait_for "the plugin's disk: read failed" nbdkit.txt
set +e
timeout 20 qemu-io -f raw -r -c 'read -q 0 4k' "$URI" >new.txt 2>&1
status=$?
set -e
[ "$status" -ne 124 ] || fail "a new client hung with the web server gone"
[ "$status" -ne 0 ] || fail "a new client read with the web server gone: $(cat new.txt)"
start_nginx www "$port"
echo 'read -P 0x77 3M 512k' >&3
wait_for 'read 524288/524288' live.txt
echo quit >&3         # not EOF: nginx, started since, holds the fifo open too
exec 3>&-
set +e
wait "$client"
status=$?
set -e
# qemu-io's status tells that a command failed (the read while nginx was gone).
[ "$status" -eq 1 ] || fail "the client exited $status: $(cat live.txt)"
qemu-img compare -q -f raw -F qed "$URI" www/qemu.qed || fail "reads after nginx came back"
stop_nbdkit
cat nbdkit.txt >&2
stop_nginx
nbdkit_refuses "$HTTP_URL/golden.qed" -r --filter="$FILTER" curl url="$HTTP_URL/golden.qed"

[ "$(sha256sum <www/golden.qed)" = "$sum_golden" ] || fail "golden.qed changed"
[ "$(sha256sum <www/qemu.qed)" = "$sum_qemu" ] || fail "qemu.qed changed"
exit 0
