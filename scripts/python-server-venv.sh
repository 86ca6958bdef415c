#!/usr/bin/env bash
# Create (or reuse) the Python virtual environment that RUNS the reference
# AIMM server (`python -m aimm.server`) and drives it through aimm's own REPL
# client, for the server-level tests (tests/python/aimm_server_driver.py).
#
#   scripts/python-server-venv.sh               # prints the venv's python last
#   PY=$(scripts/python-server-venv.sh)         # capture it
#   AIMM_BACKEND_WHEEL=dist/x.whl scripts/python-server-venv.sh
#
# Why a second venv (next to scripts/python-venv.sh): aimm 1.2.dev1's REPL
# workflow breaks with hat-json >= 0.6.8 (the juggler state diff fails on
# the integer action ids aimm uses as dict keys), whatever the backend. This
# venv therefore pins hat-json 0.6.5 and jsonpatch 1.33, which makes pip
# resolve the older hat-event 0.9.40 / hat-juggler 0.7.1 line. aimm does not
# declare numpy and pandas, but its REPL control and REPL client import them,
# so they are pinned here too. Every package is pinned to what pip resolved.
#
# Environment:
#   AIMM_SERVER_VENV    venv directory (default: <repo>/target/py-server-venv)
#   AIMM_TEST_PYTHON    interpreter used to create it (default: python3.11)
#   AIMM_BACKEND_WHEEL  optional aimm_backend wheel to install
#                       (scripts/install-wheel.sh: skipped when that exact
#                       wheel is installed already)
#
# Everything except the final python path goes to stderr. The script is
# idempotent (scripts/venv-lib.sh: a stamp records the interpreter and the
# pins). Concurrent callers are serialised with flock(1) on "<venv>.lock".
set -euo pipefail

die() {
    printf 'python-server-venv.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'python-server-venv.sh: %s\n' "$*" >&2
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)
venv=${AIMM_SERVER_VENV:-$repo_root/target/py-server-venv}
base_python=${AIMM_TEST_PYTHON:-python3.11}
wheel=${AIMM_BACKEND_WHEEL:-}

# Pins: the full set pip resolved (Python 3.11, linux x86_64) for
#   aimm==1.2.dev1 hat-json==0.6.5 jsonpatch==1.33 numpy pandas
# hat-json 0.6.5 excludes hat-event >= 0.9.41 and hat-juggler >= 0.7.2 (both
# require hat-json ~=0.6.8); the eventer client of hat-event 0.9.40 talks to
# the hat-event 0.9.44 server of scripts/hat-event-server.sh (checked by
# tests/python/aimm_server_driver.py's event-backend runs).
pins=(
    "aimm==1.2.dev1"
    "aiohappyeyeballs==2.7.1"
    "aiohttp==3.10.11"
    "aiosignal==1.4.0"
    "appdirs==1.4.4"
    "attrs==26.1.0"
    "frozenlist==1.8.0"
    "hat-aio==0.7.13"
    "hat-asn1==0.7.0"
    "hat-drivers==0.10.0"
    "hat-event==0.9.40"
    "hat-json==0.6.5"
    "hat-juggler==0.7.1"
    "hat-monitor==0.8.20"
    "hat-peg==0.5.11"
    "hat-sbs==0.7.5"
    "hat-util==0.6.22"
    "idna==3.20"
    "jsonpatch==1.33"
    "jsonpointer==3.12"
    "jsonschema==4.23.0"
    "jsonschema-specifications==2025.9.1"
    "jsonschema-rs==0.30.0"
    "lmdb==1.6.2"
    "multidict==6.9.1"
    "numpy==2.4.6"
    "pandas==3.1.1"
    "propcache==0.5.4"
    "psutil==7.2.2"
    "pyserial==3.5"
    "python-dateutil==4.0.0"
    "PyYAML==6.0.4"
    "referencing==0.35.1"
    "rpds-py==2026.9.1"
    "tenacity==9.2.1"
    "tomli-w==1.2.0"
    "typing-extensions==4.16.0"
    "tzdata==2026.6"
    "yarl==1.25.1"
)
# Modules that must import after installation: the server with both stock
# backends and the REPL control, the REPL client, the eventer client.
check_imports="import aimm.server.main, aimm.server.backend.sqlite, aimm.server.backend.event, aimm.server.control.repl, aimm.client.repl, aimm.plugins, hat.event.eventer, jsonpatch"

if [[ -n "$wheel" ]]; then
    [[ -f "$wheel" ]] || die "AIMM_BACKEND_WHEEL=$wheel: no such file"
    [[ "$wheel" == *.whl ]] || die "AIMM_BACKEND_WHEEL=$wheel: not a .whl file"
fi

stamp_name=.aimm-server-pins.stamp
# shellcheck source=scripts/venv-lib.sh
source "$script_dir/venv-lib.sh"
ensure_pinned_venv
if [[ -n "$wheel" ]]; then
    bash "$script_dir/install-wheel.sh" "$py" "$wheel"
fi
printf '%s\n' "$py"
