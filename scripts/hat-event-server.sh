#!/usr/bin/env bash
# Start / stop a real Hat event server (hat-event 0.9.44 from the test venv)
# on loopback, for the event-backend tests.
#
#   scripts/hat-event-server.sh start DIR   # prints "PORT PID" on stdout
#   scripts/hat-event-server.sh stop DIR
#
# start writes DIR/server.json (LMDB backend, db file DIR/event.db,
# eventer_server on 127.0.0.1 and a free port, no monitor_component, no
# adminer_server, no modules), starts `hat-event-server --conf DIR/server.json`
# in the background (stdin /dev/null, stdout+stderr appended to
# DIR/server.log, pid in DIR/server.pid, port in DIR/server.port), waits until
# that process owns a listening socket on the port and the port accepts TCP
# connections (it fails at once if the port is already taken), and prints
# "PORT PID". DIR is created if
# missing. An existing DIR/event.db is reused (restart keeps the events).
#
# stop sends SIGTERM to the pid in DIR/server.pid (only if that process is
# still the hat-event-server started with DIR's config), waits, then sends
# SIGKILL; it is a no-op (exit 0) when nothing is running.
#
# Environment:
#   HAT_EVENT_PORT            port to use instead of a free one
#   HAT_EVENT_START_TIMEOUT   seconds to wait for the port (default 30)
#   HAT_EVENT_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 10)
#   HAT_EVENT_LOG_LEVEL       server log level (default INFO)
#   HAT_EVENT_FLUSH_PERIOD    seconds between the LMDB backend's flushes (default 0.1)
#   AIMM_TEST_VENV, AIMM_TEST_PYTHON   passed to scripts/python-venv.sh
#
# Everything except the "PORT PID" line goes to stderr. Exit status is 0 on
# success, 1 on failure (with the tail of DIR/server.log), 2 on usage errors.
set -euo pipefail

die() {
    printf 'hat-event-server.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'hat-event-server.sh: %s\n' "$*" >&2
}
usage() {
    printf 'usage: %s start DIR | stop DIR\n' "$0" >&2
    exit 2
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# Is PID alive and the hat-event-server started with this DIR's config?
is_our_server() {
    local pid=$1 cmdline
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    case $cmdline in
        *hat-event-server*"$conf"*) return 0 ;;
        *) return 1 ;;
    esac
}

port_open() {
    # bash's /dev/tcp: succeeds when the connect succeeds
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Does PID own a LISTEN socket on TCP port PORT (IPv4)? Checks
# /proc/net/tcp (state 0A = LISTEN) against PID's open file descriptors, so a
# different process already listening on the port is never mistaken for ours.
pid_listens() {
    local pid=$1 port_hex inode
    port_hex=$(printf '%04X' "$2")
    for inode in $(awk -v p=":$port_hex" \
            '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' \
            /proc/net/tcp 2>/dev/null); do
        if ls -l "/proc/$pid/fd" 2>/dev/null | grep -q "socket:\[$inode\]"; then
            return 0
        fi
    done
    return 1
}

log_tail() {
    if [ -f "$logfile" ]; then
        printf -- '--- last lines of %s ---\n' "$logfile" >&2
        tail -n 40 "$logfile" >&2
        printf -- '--- end of log ---\n' >&2
    fi
}

case $cmd in
start)
    mkdir -p -- "$dir"
    dir=$(cd -- "$dir" && pwd)
    conf=$dir/server.json
    logfile=$dir/server.log
    pidfile=$dir/server.pid
    portfile=$dir/server.port

    if [ -f "$pidfile" ] && is_our_server "$(cat "$pidfile")"; then
        die "a server is already running for $dir (pid $(cat "$pidfile"))"
    fi

    python=$(bash "$script_dir/python-venv.sh" | tail -n 1)
    [ -x "$python" ] || die "no venv python: $python"
    server_bin=$(dirname -- "$python")/hat-event-server
    [ -x "$server_bin" ] || die "hat-event-server not found at $server_bin"

    port=${HAT_EVENT_PORT:-}
    if [ -z "$port" ]; then
        # bind port 0 and release it; the tiny race is acceptable in tests
        port=$("$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
    fi

    if port_open "$port"; then
        die "port $port on 127.0.0.1 is already in use"
    fi

    # Server configuration (hat-event://server.yaml + hat-event://backends/
    # lmdb.yaml of hat-event 0.9.44). Every event type is kept in "latest"
    # and in one timestamp-ordered timeseries, so queries find everything.
    HAT_DIR=$dir HAT_PORT=$port HAT_LEVEL=${HAT_EVENT_LOG_LEVEL:-INFO} \
    HAT_FLUSH=${HAT_EVENT_FLUSH_PERIOD:-0.1} \
    "$python" - "$conf" <<'PYEOF'
import json, os, sys
conf = {
    'type': 'event',
    'log': {
        'version': 1,
        'formatters': {'default': {
            'format': '%(asctime)s %(levelname)s %(name)s: %(message)s'}},
        'handlers': {'console': {'class': 'logging.StreamHandler',
                                 'formatter': 'default',
                                 'level': os.environ['HAT_LEVEL']}},
        'root': {'level': os.environ['HAT_LEVEL'], 'handlers': ['console']},
        'disable_existing_loggers': False},
    'name': 'aimm-test-event-server',
    'server_id': 1,
    'backend': {
        'module': 'hat.event.backends.lmdb',
        'db_path': os.path.join(os.environ['HAT_DIR'], 'event.db'),
        'identifier': None,
        'flush_period': float(os.environ['HAT_FLUSH']),
        'cleanup_period': 3600,
        'conditions': [],
        'latest': {'subscriptions': [['*']]},
        'timeseries': [{'order_by': 'TIMESTAMP',
                        'subscriptions': [['*']]}]},
    'modules': [],
    'eventer_server': {'host': '127.0.0.1',
                       'port': int(os.environ['HAT_PORT'])},
}
with open(sys.argv[1], 'w') as f:
    json.dump(conf, f, indent=4)
PYEOF

    printf '\n=== %s starting on 127.0.0.1:%s ===\n' "$(date -Is)" "$port" \
        >>"$logfile"
    "$server_bin" --conf "$conf" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    printf '%s\n' "$port" >"$portfile"

    timeout=${HAT_EVENT_START_TIMEOUT:-30}
    deadline=$((SECONDS + timeout))
    until pid_listens "$pid" "$port" && port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            log_tail
            rm -f -- "$pidfile"
            die "hat-event-server exited (status $rc) before listening on port $port"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            kill -KILL "$pid" 2>/dev/null || true
            rm -f -- "$pidfile"
            die "hat-event-server (pid $pid) did not accept connections on port $port within ${timeout}s"
        fi
        sleep 0.1
    done
    log "hat-event-server pid $pid listening on 127.0.0.1:$port (log $logfile)"
    printf '%s %s\n' "$port" "$pid"
    ;;

stop)
    [ -d "$dir" ] || { log "no directory $dir; nothing to stop"; exit 0; }
    dir=$(cd -- "$dir" && pwd)
    conf=$dir/server.json
    logfile=$dir/server.log
    pidfile=$dir/server.pid
    if [ ! -f "$pidfile" ]; then
        log "no $pidfile; nothing to stop"
        exit 0
    fi
    pid=$(cat "$pidfile")
    if ! is_our_server "$pid"; then
        log "pid $pid is not running (or is not our server); nothing to stop"
        rm -f -- "$pidfile"
        exit 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    timeout=${HAT_EVENT_STOP_TIMEOUT:-10}
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "pid $pid still alive ${timeout}s after SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    # reap it if it is our child (it is not when started by another shell)
    wait "$pid" 2>/dev/null || true
    # a killed process can linger as a zombie of another parent: wait for
    # it to stop being "ours" (bounded)
    for _ in $(seq 50); do
        is_our_server "$pid" || break
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
        sleep 0.1
    done
    rm -f -- "$pidfile"
    log "stopped hat-event-server pid $pid"
    ;;

*)
    usage
    ;;
esac
