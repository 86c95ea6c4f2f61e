# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared helpers for the shell tests (sourced, not run).
# Each test: `. "$TESTS_DIR/functions.sh"`, then `requires qemu-img`, then
# work in "$T", a fresh directory removed on exit.
set -eu

: "${QED_IMG:?run through meson test}"
: "${QED_IO:?run through meson test}"

# Skip the test (exit 77) unless every named command exists.
requires() {
    for cmd in "$@"; do
        if ! command -v "$cmd" >/dev/null 2>&1; then
            echo "SKIP: $cmd is not installed" >&2
            exit 77
        fi
    done
}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

_cleanup_cmds=""
# Run a command when the test exits, whatever the exit path.
on_exit() {
    _cleanup_cmds="$*; $_cleanup_cmds"
}
_run_cleanup() {
    status=$?
    eval "$_cleanup_cmds" || true
    rm -rf "$T"
    exit "$status"
}
T=$(mktemp -d "${TMPDIR:-/tmp}/qedtest.XXXXXX")
trap _run_cleanup EXIT INT TERM

# Fail unless two files are byte-identical, showing where they differ.
assert_same_bytes() {
    if ! cmp "$1" "$2"; then
        fail "$1 and $2 differ"
    fi
}

# Fail unless the command's exit status is the given number.
assert_status() {
    want=$1
    shift
    set +e
    "$@"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || fail "'$*' exited $got, expected $want"
}

# nbdkit, with the sanitizer runtime preloaded when the plugin under test
# was built with one (nbdkit itself is not, so its leaks are not ours).
# NBDKIT_AS, when set, is a command prefix nbdkit runs under (setpriv ...).
run_nbdkit() {
    (exec_nbdkit "$@")
}

# exec_nbdkit ARGS...: replaces the shell with that nbdkit. Started as
# `exec_nbdkit ARGS &`, $! is nbdkit itself (a NBDKIT_AS prefix execs it),
# so that the test can wait for it to close the image.
exec_nbdkit() {
    if [ -n "${NBDKIT_PRELOAD:-}" ]; then
        export LD_PRELOAD="$NBDKIT_PRELOAD" ASAN_OPTIONS=detect_leaks=0
    fi
    # shellcheck disable=SC2086
    exec ${NBDKIT_AS:-} nbdkit "$@"
}

# wait_ready PID MESSAGE COMMAND...: polls COMMAND every 0.1 s while process
# PID runs, until it succeeds; fails with MESSAGE after 20 s. Returns
# whether PID still runs then (1: it exited first).
wait_ready() {
    _wpid=$1
    _wmsg=$2
    shift 2
    _wi=0
    while alive "$_wpid" && ! "$@"; do
        _wi=$((_wi + 1))
        [ "$_wi" -lt 200 ] || fail "$_wmsg"
        sleep 0.1
    done
    alive "$_wpid"
}

# Starts nbdkit in the foreground of a background job, serving on the Unix
# socket $1 with the remaining arguments; it is stopped when the test exits.
# Sets NBDKIT_PID. Fails if the socket does not appear within 20 seconds.
start_nbdkit() {
    _sock=$1
    shift
    rm -f "$_sock"
    exec_nbdkit --exit-with-parent -f -U "$_sock" "$@" &
    NBDKIT_PID=$!
    on_exit "kill $NBDKIT_PID 2>/dev/null"
    wait_ready "$NBDKIT_PID" "nbdkit $* did not create $_sock" test -S "$_sock" ||
        fail "nbdkit $* exited before serving"
}

# Is process $1 running (not gone, not a zombie waiting for `wait`)?
alive() {
    _state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$_state" ] && [ "$_state" != Z ]
}

# Stops the nbdkit started by start_nbdkit and waits until it has closed the
# image (so that the file is flushed and marked clean). With the ASan
# runtime preloaded into nbdkit, its exit can deadlock in libp11-kit's
# destructor (glibc's setlocale lock, its reader count underflowed) once it
# has printed an error, after the plugin was unloaded: that hang is nbdkit's
# and the preload's, so there it is killed after 10 seconds.
stop_nbdkit() {
    kill "$NBDKIT_PID" 2>/dev/null || true
    if [ -n "${NBDKIT_PRELOAD:-}" ]; then
        _i=0
        while alive "$NBDKIT_PID" && [ "$_i" -lt 100 ]; do
            _i=$((_i + 1))
            sleep 0.1
        done
        kill -9 "$NBDKIT_PID" 2>/dev/null || true
    fi
    wait "$NBDKIT_PID" 2>/dev/null || true
}

# Prints a TCP port on 127.0.0.1 that nothing listens on at this moment (the
# kernel's pick for a bind to port 0), for a server the test starts:
#     nbdkit -p "$(free_tcp_port)" -i 127.0.0.1 ...
# Another process may take it before the server binds it; start_nbdkit_tcp
# and start_nginx retry with a fresh port when that happens.
free_tcp_port() {
    python3 -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
'
}

# Does something accept TCP connections on 127.0.0.1:$1?
tcp_port_open() {
    python3 -c '
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()
except OSError:
    sys.exit(1)
' "$1"
}

# start_nbdkit_tcp NBDKIT-ARGS...: start_nbdkit on TCP instead of a Unix
# socket: nbdkit listens on 127.0.0.1 at a free port (free_tcp_port), so that
# tests running in parallel never collide. Sets NBDKIT_PID, NBDKIT_PORT and
# NBDKIT_TCP_URI (nbd://127.0.0.1:PORT). It is ready once the port accepts
# connections; when nbdkit exits first and the port is taken, another process
# won the port, and it starts again on a new one. stop_nbdkit stops it.
start_nbdkit_tcp() {
    _try=0
    while :; do
        NBDKIT_PORT=$(free_tcp_port)
        exec_nbdkit --exit-with-parent -f -i 127.0.0.1 -p "$NBDKIT_PORT" "$@" &
        NBDKIT_PID=$!
        on_exit "kill $NBDKIT_PID 2>/dev/null"
        wait_ready "$NBDKIT_PID" "nbdkit $* did not listen on port $NBDKIT_PORT" \
            tcp_port_open "$NBDKIT_PORT" && break
        wait "$NBDKIT_PID" 2>/dev/null || true
        _try=$((_try + 1))
        if ! tcp_port_open "$NBDKIT_PORT" || [ "$_try" -ge 5 ]; then
            fail "nbdkit $* exited before serving on port $NBDKIT_PORT"
        fi
        echo "port $NBDKIT_PORT was taken; starting nbdkit again" >&2
    done
    NBDKIT_TCP_URI="nbd://127.0.0.1:$NBDKIT_PORT"
}

# start_nginx DIR [PORT]: serves DIR read-only over HTTP with Debian's nginx
# (nginx-light), as the test's user, on 127.0.0.1 at a free port: GET and
# HEAD of static files, with Range requests (206); anything else is refused
# (PUT: 405). Sets NGINX_PID, HTTP_PORT and HTTP_URL (http://127.0.0.1:PORT,
# no slash). Its configuration, pid file, logs and temporary directories are
# in $T/nginx; its errors go to the test's stderr, each request to
# $T/nginx/access.log. One process (master_process off), not a daemon: $! is
# nginx, and its parent's death (even SIGKILL of the test) sends it SIGTERM.
# It is ready once its pid file exists, which nginx writes after binding the
# port; a port taken meanwhile makes it start again on another one. With
# PORT (a server coming back where its clients expect it), that port or a
# failure. It is stopped when the test exits, or earlier by stop_nginx; one
# nginx at a time.
start_nginx() {
    _nginx=nginx
    if ! command -v nginx >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; then
        _nginx=/usr/sbin/nginx  # not in a user's PATH on Debian
    fi
    requires "$_nginx"
    [ -z "${NGINX_PID:-}" ] || fail "start_nginx: nginx already runs (stop_nginx first)"
    _root=$(cd "$1" && pwd)
    _ngx=$T/nginx
    mkdir -p "$_ngx"
    _pdeath=""
    if command -v setpriv >/dev/null 2>&1; then
        _pdeath="setpriv --pdeathsig TERM"
    fi
    on_exit stop_nginx
    _try=0
    while :; do
        HTTP_PORT=${2:-$(free_tcp_port)}
        rm -f "$_ngx/nginx.pid"
        cat >"$_ngx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $_ngx/nginx.pid;
lock_file $_ngx/nginx.lock;
error_log stderr error;
events {
    worker_connections 64;
}
http {
    access_log $_ngx/access.log;
    client_body_temp_path $_ngx/body;
    proxy_temp_path $_ngx/proxy;
    fastcgi_temp_path $_ngx/fastcgi;
    uwsgi_temp_path $_ngx/uwsgi;
    scgi_temp_path $_ngx/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        root $_root;
    }
}
NGINX
        # -e: the log for errors before the configuration is read (the
        # compiled-in default may be a file under /var/log).
        $_pdeath "$_nginx" -p "$_ngx/" -c "$_ngx/nginx.conf" -e stderr &
        NGINX_PID=$!
        wait_ready "$NGINX_PID" "nginx did not start on port $HTTP_PORT" \
            test -s "$_ngx/nginx.pid" && break
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=""
        _try=$((_try + 1))
        if [ -n "${2:-}" ] || ! tcp_port_open "$HTTP_PORT" || [ "$_try" -ge 5 ]; then
            fail "nginx exited before serving on port $HTTP_PORT"
        fi
        echo "port $HTTP_PORT was taken; starting nginx again" >&2
    done
    HTTP_URL="http://127.0.0.1:$HTTP_PORT"
}

# Stops the nginx of start_nginx (if it still runs) and waits for it.
stop_nginx() {
    if [ -n "${NGINX_PID:-}" ]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=""
    fi
}
