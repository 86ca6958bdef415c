#!/usr/bin/env bash
# Start / stop a real PostgreSQL 15 server (Debian's `postgresql`) in a
# scratch directory on loopback, for the PostgreSQL backend's tests.
#
#   scripts/postgres.sh start DIR   # prints "PORT PID" on stdout
#   scripts/postgres.sh stop DIR    # a clean shutdown (pg_ctl stop -m fast)
#   scripts/postgres.sh crash DIR   # a crash: pg_ctl stop -m immediate, no checkpoint
#
# start makes the cluster on first use: DIR/data (initdb, UTF8, locale C,
# data checksums; local connections by trust, TCP ones by scram-sha-256),
# a role `aimm` owning a database `aimm`, whose password is in
# DIR/aimm.password (mode 0600). It then starts the server listening on
# 127.0.0.1 and a free port (or PG_PORT), with its socket in DIR/socket and
# its log appended to DIR/server.log, waits until it accepts connections,
# and prints "PORT PID". A DIR whose cluster exists is started again as it
# is (a restart keeps the data); its port is kept in DIR/server.port.
#
# PostgreSQL refuses to run as root: run as root, the script runs every
# server program as the `postgres` user, gives it DIR, and lets it through
# DIR's parent directories (a test's private temporary directory gets the
# search bit, o+x, nothing more).
#
# With PG_TLS=1 the server also offers TLS (ssl = on): on first use, a
# test CA (DIR/tls/ca.crt) and a server certificate it signs for
# 127.0.0.1 and localhost are made with openssl. Plain connections are
# still accepted.
#
# Environment:
#   PG_BIN              the server programs (default /usr/lib/postgresql/15/bin)
#   PG_TLS              1: offer TLS
#   PG_PORT             port to use instead of a free one
#   PG_START_TIMEOUT    seconds to wait for the server (default 60)
#
# Everything except the "PORT PID" line goes to stderr. Exit status is 0 on
# success, 1 on failure (with the tail of DIR/server.log), 2 on usage errors.
set -euo pipefail

name=postgres.sh
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
# die, log, log_tail (of $logfile) and free_port.
# shellcheck source=scripts/hat-lib.sh
source "$script_dir/hat-lib.sh"
usage() {
    printf 'usage: %s start DIR | stop DIR | crash DIR\n' "$name" >&2
    exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$bin/pg_ctl" ] && [ -x "$bin/initdb" ] \
    || die "no PostgreSQL server programs in $bin: apt-get install postgresql (15), or set PG_BIN"

# Runs a server program as the user the server must run as.
as_server() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# As root: DIR belongs to postgres, and postgres can reach it.
hand_over() {
    [ "$(id -u)" = 0 ] || return 0
    id postgres >/dev/null 2>&1 || die "no postgres user to run the server as (Debian's postgresql makes it)"
    chown -R postgres: -- "$dir"
    local parent
    parent=$(dirname -- "$dir")
    while [ "$parent" != / ]; do
        runuser -u postgres -- test -x "$parent" || chmod o+x -- "$parent"
        parent=$(dirname -- "$parent")
    done
}

# The cluster, its role and database, made once.
init_cluster() {
    local superuser_password
    superuser_password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    (umask 077 && printf '%s\n' "$superuser_password" >"$dir/superuser.password")
    hand_over
    as_server "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C \
        --data-checksums --auth-local=trust --auth-host=scram-sha-256 \
        --pwfile="$dir/superuser.password" >>"$dir/server.log" 2>&1 \
        || { log_tail; die "initdb failed"; }
}

make_role() {
    local password
    password=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    as_server "$bin/psql" -h "$dir/socket" -p "$port" -U postgres -d postgres \
        -v ON_ERROR_STOP=1 -q >>"$dir/server.log" 2>&1 <<SQL || { log_tail; die "making the role aimm failed"; }
CREATE ROLE aimm LOGIN PASSWORD '$password';
CREATE DATABASE aimm OWNER aimm;
SQL
    (umask 077 && printf '%s\n' "$password" >"$dir/aimm.password")
}

# A test CA and a server certificate it signs, in DIR/tls, made once.
make_certificates() {
    local tls=$dir/tls
    [ -f "$tls/server.crt" ] && return 0
    command -v openssl >/dev/null || die "PG_TLS=1 needs openssl (apt-get install openssl)"
    mkdir -p -- "$tls"
    {
        openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=aimm test CA" \
            -keyout "$tls/ca.key" -out "$tls/ca.crt" &&
            openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
                -keyout "$tls/server.key" -out "$tls/server.csr" &&
            printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
                "extendedKeyUsage=serverAuth" >"$tls/server.ext" &&
            openssl x509 -req -days 7 -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
                -CAcreateserial -extfile "$tls/server.ext" -out "$tls/server.crt"
    } >>"$dir/server.log" 2>&1 || { log_tail; die "making the test certificates failed"; }
    chmod 600 "$tls/server.key"
}

case $cmd in
start)
    mkdir -p -- "$dir"
    dir=$(cd -- "$dir" && pwd)
    logfile=$dir/server.log
    fresh=
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        init_cluster
        fresh=1
    fi
    port=${PG_PORT:-$(cat "$dir/server.port" 2>/dev/null || free_port python3)}
    mkdir -p -- "$dir/socket"
    tls_options=
    if [ "${PG_TLS:-}" = 1 ]; then
        make_certificates
        tls_options="-c ssl=on -c ssl_cert_file=$dir/tls/server.crt -c ssl_key_file=$dir/tls/server.key"
    fi
    hand_over
    if as_server "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
        die "a server is already running for $dir"
    fi
    as_server "$bin/pg_ctl" start -D "$dir/data" -l "$dir/server.log" -w \
        -t "${PG_START_TIMEOUT:-60}" \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/socket $tls_options" \
        >&2 || { log_tail; die "the server did not start on port $port"; }
    printf '%s\n' "$port" >"$dir/server.port"
    [ -z "$fresh" ] || make_role
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    printf '%s %s\n' "$port" "$pid"
    ;;
stop | crash)
    dir=$(cd -- "$dir" 2>/dev/null && pwd) || { log "no $2; nothing to stop"; exit 0; }
    if ! as_server "$bin/pg_ctl" status -D "$dir/data" >/dev/null 2>&1; then
        log "no server running for $dir; nothing to stop"
        exit 0
    fi
    mode=fast
    [ "$cmd" = stop ] || mode=immediate
    as_server "$bin/pg_ctl" stop -D "$dir/data" -m "$mode" -w -t 60 >&2 \
        || die "pg_ctl stop -m $mode failed"
    ;;
*)
    usage
    ;;
esac
