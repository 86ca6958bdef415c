#!/usr/bin/env bash
# Create (or reuse) the Python virtual environment holding the reference
# implementation used by the compatibility tests and benchmarks.
#
#   scripts/python-venv.sh            # prints the venv's python path last
#   PY=$(scripts/python-venv.sh)      # capture it
#
# Environment:
#   AIMM_TEST_VENV    venv directory (default: <repo>/target/py-venv)
#   AIMM_TEST_PYTHON  interpreter used to create it (default: python3.11)
#
# Everything except the final python path goes to stderr. The script is
# idempotent (scripts/venv-lib.sh: a stamp records the interpreter and the
# pins). Concurrent callers are serialised with flock(1) on "<venv>.lock".
set -euo pipefail

die() {
    printf 'python-venv.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'python-venv.sh: %s\n' "$*" >&2
}

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd -- "$script_dir/.." && pwd)
venv=${AIMM_TEST_VENV:-$repo_root/target/py-venv}
base_python=${AIMM_TEST_PYTHON:-python3.11}

# Pins. hat-sbs is the version pip resolves next to hat-event 0.9.44
# (hat-event 0.9.44 requires hat-sbs~=0.7.x); aimm 1.2.dev1 requires
# hat-event>=0.9,<0.10, so all three live in one environment.
pins=(
    "aimm==1.2.dev1"
    "hat-event==0.9.44"
    "hat-sbs==0.7.6"
    # The monitor of the redundant-group tests (scripts/hat-monitor.sh); the
    # version pip resolves next to hat-event 0.9.44.
    "hat-monitor==0.8.23"
    # The type stubs of aimm_backend._native are checked with its stubtest.
    "mypy==1.13.0"
)
# Modules that must import after installation.
check_imports="import aimm.server.backend.sqlite, aimm.server.backend.event, aimm.plugins, hat.event.common, hat.event.eventer, hat.monitor.component, hat.sbs, mypy.stubtest"

stamp_name=.aimm-pins.stamp
# shellcheck source=scripts/venv-lib.sh
source "$script_dir/venv-lib.sh"
ensure_pinned_venv
printf '%s\n' "$py"
