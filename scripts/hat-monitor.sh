#!/usr/bin/env bash
# Start / stop a real Hat monitor server (hat-monitor 0.8.23 from the test
# venv) on loopback, for the tests of redundant event servers.
#
#   scripts/hat-monitor.sh start DIR   # prints "PORT PID" on stdout
#   scripts/hat-monitor.sh stop DIR
#
# start writes DIR/monitor.json (hat-monitor://server.yaml: BLESS_ONE for
# every group, the component server on 127.0.0.1 and a free port, the master
# listener on another free port, no parents, no UI), starts
# `hat-monitor --conf DIR/monitor.json` in the background (output appended
# to DIR/monitor.log, pid in DIR/monitor.pid, port in DIR/monitor.port),
# waits until it accepts connections on the component port, and prints
# "PORT PID". Components (event servers started by scripts/hat-event-server.sh
# with HAT_MONITOR_PORT, AIMM hosts) connect to PORT.
#
# stop sends SIGTERM, then SIGKILL after HAT_MONITOR_STOP_TIMEOUT seconds
# (default 10); a no-op when nothing is running.
#
# Environment:
#   HAT_MONITOR_PORT            component port to use instead of a free one
#   HAT_MONITOR_START_TIMEOUT   seconds to wait for the port (default 30)
#   HAT_MONITOR_LOG_LEVEL       log level (default INFO)
#   AIMM_TEST_VENV, AIMM_TEST_PYTHON   passed to scripts/python-venv.sh
#
# Everything except the "PORT PID" line goes to stderr. Exit status is 0 on
# success, 1 on failure (with the tail of DIR/monitor.log), 2 on usage errors.
set -euo pipefail

name=hat-monitor.sh
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/hat-lib.sh
source "$script_dir/hat-lib.sh"

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
mkdir -p -- "$dir"
dir=$(cd -- "$dir" && pwd)
conf=$dir/monitor.json
logfile=$dir/monitor.log
pidfile=$dir/monitor.pid

case $cmd in
start)
    if [ -f "$pidfile" ] && is_ours "$(cat "$pidfile")" hat-monitor; then
        die "a monitor is already running for $dir (pid $(cat "$pidfile"))"
    fi
    venv_program hat-monitor
    monitor_bin=$program_path

    port=${HAT_MONITOR_PORT:-$(free_port "$python")}
    master_port=$(free_port "$python")
    for p in "$port" "$master_port"; do
        ! port_open "$p" || die "port $p on 127.0.0.1 is already in use"
    done

    HAT_PORT=$port HAT_MASTER=$master_port \
    HAT_LOG=$(log_conf "${HAT_MONITOR_LOG_LEVEL:-INFO}") "$python" - "$conf" <<'PYEOF'
import json, os, sys
conf = {
    'type': 'monitor',
    'log': json.loads(os.environ['HAT_LOG']),
    'default_algorithm': 'BLESS_ONE',
    'group_algorithms': {},
    'server': {'host': '127.0.0.1', 'port': int(os.environ['HAT_PORT']),
               'default_rank': 1},
    'master': {'host': '127.0.0.1', 'port': int(os.environ['HAT_MASTER'])},
    'slave': {'parents': [], 'connect_timeout': 5,
              'connect_retry_count': 3, 'connect_retry_delay': 1},
}
with open(sys.argv[1], 'w') as f:
    json.dump(conf, f, indent=4)
PYEOF

    printf '%s\n' "$port" >"$dir/monitor.port"
    start_and_wait "$monitor_bin" "$port" "${HAT_MONITOR_START_TIMEOUT:-30}"
    log "hat-monitor pid $pid listening on 127.0.0.1:$port (log $logfile)"
    printf '%s %s\n' "$port" "$pid"
    ;;
stop)
    stop_process hat-monitor "${HAT_MONITOR_STOP_TIMEOUT:-10}"
    ;;
*)
    usage
    ;;
esac
