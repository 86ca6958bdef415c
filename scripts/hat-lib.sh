# Shared by scripts/hat-event-server.sh and scripts/hat-monitor.sh: start a
# Hat process from the reference venv in the background on a loopback port,
# wait until it listens there, and stop it again. Sourced, not run.
# scripts/postgres.sh uses its generic helpers (die, log, log_tail,
# free_port).
#
# The sourcing script sets `name` (for messages), `script_dir`, `conf`,
# `logfile`, `pidfile` before calling these.

die() {
    printf '%s: error: %s\n' "$name" "$*" >&2
    exit 1
}
usage() {
    printf 'usage: %s start DIR | stop DIR\n' "$name" >&2
    exit 2
}

# The reference venv's python (made if missing) in `python`, and the path
# of its console script PROGRAM in `program_path`.
venv_program() {
    python=$(bash "$script_dir/python-venv.sh" | tail -n 1)
    [ -x "$python" ] || die "no venv python: $python"
    program_path=$(dirname -- "$python")/$1
    [ -x "$program_path" ] || die "$1 not found at $program_path"
}
log() {
    printf '%s: %s\n' "$name" "$*" >&2
}

# Is PID alive and running PROGRAM with this DIR's config?
is_ours() {
    local pid=$1 program=$2 cmdline
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    case $cmdline in
        *"$program"*"$conf"*) return 0 ;;
        *) return 1 ;;
    esac
}

# The `log` section of a Hat process's config (Python logging dictConfig,
# JSON): everything at LEVEL and above to the console.
log_conf() {
    printf '{"version": 1, "formatters": {"default": {"format": "%%(asctime)s %%(levelname)s %%(name)s: %%(message)s"}}, "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default", "level": "%s"}}, "root": {"level": "%s", "handlers": ["console"]}, "disable_existing_loggers": false}' "$1" "$1"
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

# A free port on 127.0.0.1 (bound and released: the tiny race is acceptable
# in tests).
free_port() {
    "$1" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Starts PROGRAM --conf $conf in the background (stdin /dev/null, output
# appended to $logfile, pid in $pidfile) and waits up to TIMEOUT seconds
# until it listens on PORT and the port accepts connections. Sets `pid`.
start_and_wait() {
    local program=$1 port=$2 timeout=$3 deadline rc
    printf '\n=== %s starting on 127.0.0.1:%s ===\n' "$(date -Is)" "$port" \
        >>"$logfile"
    "$program" --conf "$conf" </dev/null >>"$logfile" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$pidfile"
    deadline=$((SECONDS + timeout))
    until pid_listens "$pid" "$port" && port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rc=0
            wait "$pid" || rc=$?
            log_tail
            rm -f -- "$pidfile"
            die "$(basename -- "$program") exited (status $rc) before listening on port $port"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log_tail
            kill -KILL "$pid" 2>/dev/null || true
            rm -f -- "$pidfile"
            die "$(basename -- "$program") (pid $pid) did not accept connections on port $port within ${timeout}s"
        fi
        sleep 0.1
    done
}

# Stops the PROGRAM whose pid is in $pidfile: SIGTERM, then SIGKILL after
# TIMEOUT seconds; a no-op when nothing of ours is running.
stop_process() {
    local program=$1 timeout=$2 pid deadline
    if [ ! -f "$pidfile" ]; then
        log "no $pidfile; nothing to stop"
        return 0
    fi
    pid=$(cat "$pidfile")
    if ! is_ours "$pid" "$program"; then
        log "pid $pid is not running (or is not ours); nothing to stop"
        rm -f -- "$pidfile"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
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
        is_ours "$pid" "$program" || break
        grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
        sleep 0.1
    done
    rm -f -- "$pidfile"
    log "stopped $program pid $pid"
}
