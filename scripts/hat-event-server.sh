#!/usr/bin/env bash
# Start / stop a real Hat event server (hat-event 0.9.44 from the test venv)
# on loopback, for the event-backend tests.
#
#   scripts/hat-event-server.sh start DIR   # prints "PORT PID" on stdout
#   scripts/hat-event-server.sh stop DIR
#
# start writes DIR/server.json (LMDB backend, db file DIR/event.db,
# eventer_server on 127.0.0.1 and a free port, no adminer_server, no
# modules; a monitor_component only with HAT_MONITOR_PORT), starts `hat-event-server --conf DIR/server.json`
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
#   HAT_EVENT_SERVER_ID       the server's server_id (default 1)
#   HAT_MONITOR_PORT          join the hat-monitor listening on this port of
#                             127.0.0.1 (scripts/hat-monitor.sh) as a
#                             component of group HAT_EVENT_GROUP (default
#                             "event"), with server_token HAT_SERVER_TOKEN
#                             (default "aimm-test"): a redundant group
#   AIMM_TEST_VENV, AIMM_TEST_PYTHON   passed to scripts/python-venv.sh
#
# Everything except the "PORT PID" line goes to stderr. Exit status is 0 on
# success, 1 on failure (with the tail of DIR/server.log), 2 on usage errors.
set -euo pipefail

name=hat-event-server.sh
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/hat-lib.sh
source "$script_dir/hat-lib.sh"

[ $# -eq 2 ] || usage
cmd=$1
dir=$2

case $cmd in
start)
    mkdir -p -- "$dir"
    dir=$(cd -- "$dir" && pwd)
    conf=$dir/server.json
    logfile=$dir/server.log
    pidfile=$dir/server.pid
    portfile=$dir/server.port

    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" hat-event-server; then
        die "a server is already running for $dir (pid $(cat "$pidfile"))"
    fi

    venv_program hat-event-server
    server_bin=$program_path

    port=${HAT_EVENT_PORT:-$(free_port "$python")}
    if port_open "$port"; then
        die "port $port on 127.0.0.1 is already in use"
    fi

    # Server configuration (hat-event://server.yaml + hat-event://backends/
    # lmdb.yaml of hat-event 0.9.44). Every event type is kept in "latest"
    # and in one timestamp-ordered timeseries, so queries find everything.
    HAT_DIR=$dir HAT_PORT=$port HAT_LOG=$(log_conf "${HAT_EVENT_LOG_LEVEL:-INFO}") \
    HAT_FLUSH=${HAT_EVENT_FLUSH_PERIOD:-0.1} \
    HAT_SERVER_ID=${HAT_EVENT_SERVER_ID:-1} \
    HAT_MONITOR=${HAT_MONITOR_PORT:-} HAT_GROUP=${HAT_EVENT_GROUP:-event} \
    HAT_TOKEN=${HAT_SERVER_TOKEN:-aimm-test} \
    "$python" - "$conf" <<'PYEOF'
import json, os, sys
server_id = int(os.environ['HAT_SERVER_ID'])
conf = {
    'type': 'event',
    'log': json.loads(os.environ['HAT_LOG']),
    'name': f'aimm-test-event-server-{server_id}',
    'server_id': server_id,
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
if os.environ['HAT_MONITOR']:
    conf['server_token'] = os.environ['HAT_TOKEN']
    conf['monitor_component'] = {'host': '127.0.0.1',
                                 'port': int(os.environ['HAT_MONITOR']),
                                 'group': os.environ['HAT_GROUP']}
with open(sys.argv[1], 'w') as f:
    json.dump(conf, f, indent=4)
PYEOF

    printf '%s\n' "$port" >"$portfile"
    start_and_wait "$server_bin" "$port" "${HAT_EVENT_START_TIMEOUT:-30}"
    log "hat-event-server pid $pid listening on 127.0.0.1:$port (log $logfile)"
    printf '%s %s\n' "$port" "$pid"
    ;;

stop)
    [ -d "$dir" ] || { log "no directory $dir; nothing to stop"; exit 0; }
    dir=$(cd -- "$dir" && pwd)
    conf=$dir/server.json
    logfile=$dir/server.log
    pidfile=$dir/server.pid
    stop_process hat-event-server "${HAT_EVENT_STOP_TIMEOUT:-10}"
    ;;

*)
    usage
    ;;
esac
