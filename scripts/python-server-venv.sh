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
#   AIMM_BACKEND_WHEEL  optional wheel (e.g. our aimm_backend package) to
#                       install with `pip install --no-deps --force-reinstall`;
#                       skipped when the wheel stamp records the same sha256
#                       and the distribution is still installed. Once
#                       installed, a wheel stays until another one replaces it
#                       or the venv is recreated.
#
# Everything except the final python path goes to stderr. The script is
# idempotent: stamp files inside the venv record the interpreter, the pins
# and the installed wheel; when they match and the packages import, nothing
# is reinstalled. Concurrent callers are serialised with flock(1) on
# "<venv>.lock".
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

command -v "$base_python" >/dev/null 2>&1 \
    || die "interpreter '$base_python' not found (set AIMM_TEST_PYTHON)"
base_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
    || die "cannot run '$base_python'"
case "$base_version" in
    3.1[0-9].*) ;;
    *) die "aimm 1.2.dev1 needs Python >=3.10, '$base_python' is $base_version" ;;
esac

if [[ -n "$wheel" ]]; then
    [[ -f "$wheel" ]] || die "AIMM_BACKEND_WHEEL=$wheel: no such file"
    [[ "$wheel" == *.whl ]] || die "AIMM_BACKEND_WHEEL=$wheel: not a .whl file"
    wheel=$(cd -- "$(dirname -- "$wheel")" && pwd)/$(basename -- "$wheel")
fi

mkdir -p -- "$(dirname -- "$venv")" || die "cannot create parent of $venv"
venv=$(cd -- "$(dirname -- "$venv")" && pwd)/$(basename -- "$venv")
py=$venv/bin/python
stamp=$venv/.aimm-server-pins.stamp
wheel_stamp=$venv/.aimm-backend-wheel.stamp
expected_stamp=$(printf 'python=%s\n' "$base_version"; printf '%s\n' "${pins[@]}")

exec 9>"$venv.lock" || die "cannot open lock file $venv.lock"
flock 9 || die "cannot lock $venv.lock"

# Prints the installed version of distribution $1, fails when absent.
installed_version() {
    "$py" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$1" 2>/dev/null
}

base_up_to_date() {
    [[ -x "$py" && -f "$stamp" ]] \
        && [[ "$(cat -- "$stamp")" == "$expected_stamp" ]] \
        && "$py" -c "$check_imports" >/dev/null 2>&1
}

install_base() {
    rm -f -- "$stamp" "$wheel_stamp"
    local venv_args=() existing
    if [[ -x "$py" ]]; then
        existing=$("$py" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || true)
        if [[ "$existing" != "$base_version" ]]; then
            log "existing venv uses Python '${existing:-unknown}', recreating with $base_version"
            venv_args+=(--clear)
        fi
    fi

    log "creating venv at $venv with $base_python ($base_version)"
    "$base_python" -m venv "${venv_args[@]}" "$venv" >&2 \
        || die "python -m venv failed for $venv"
    [[ -x "$py" ]] || die "venv created but $py is missing"

    log "installing ${#pins[@]} pinned packages"
    "$py" -m pip install --disable-pip-version-check --no-input \
        "${pins[@]}" >&2 \
        || die "pip install failed for: ${pins[*]}"

    "$py" -m pip check --disable-pip-version-check >&2 \
        || die "pip check reports broken requirements in $venv"

    local pin name want have
    for pin in "${pins[@]}"; do
        name=${pin%%==*}
        want=${pin#*==}
        have=$(installed_version "$name") \
            || die "$name is not installed in $venv"
        [[ "$have" == "$want" ]] || die "$name: wanted $want, installed $have"
    done

    "$py" -c "$check_imports" >&2 \
        || die "installed packages do not import in $venv"

    printf '%s\n' "$expected_stamp" >"$stamp.tmp" && mv -f -- "$stamp.tmp" "$stamp" \
        || die "cannot write stamp $stamp"
    log "venv ready: $venv"
}

# Installs $wheel unless the wheel stamp records the same file content and
# its distribution is still installed at the wheel's version.
install_wheel() {
    local base sha dist version expected
    base=$(basename -- "$wheel")
    # wheel file names are {dist}-{version}(-{build})?-{py}-{abi}-{plat}.whl
    dist=${base%%-*}
    version=${base#*-}
    version=${version%%-*}
    [[ -n "$dist" && -n "$version" && "$dist" != "$base" ]] \
        || die "cannot parse distribution and version from wheel name $base"
    sha=$(sha256sum -- "$wheel" | cut -d' ' -f1) || die "cannot hash $wheel"
    expected=$(printf 'sha256=%s\ndist=%s\nversion=%s\n' "$sha" "$dist" "$version")

    if [[ -f "$wheel_stamp" ]] \
        && [[ "$(cat -- "$wheel_stamp")" == "$expected" ]] \
        && [[ "$(installed_version "$dist" || true)" == "$version" ]]; then
        log "wheel already installed: $base (sha256 $sha)"
        return
    fi

    rm -f -- "$wheel_stamp"
    log "installing wheel $base (sha256 $sha)"
    "$py" -m pip install --disable-pip-version-check --no-input \
        --no-deps --force-reinstall "$wheel" >&2 \
        || die "pip install failed for wheel $wheel"
    [[ "$(installed_version "$dist" || true)" == "$version" ]] \
        || die "wheel $base installed but distribution $dist $version is not visible"
    # The wheel's own requirements are not installed (--no-deps): report a
    # mismatch without failing, the tests show whether it matters.
    "$py" -m pip check --disable-pip-version-check >&2 \
        || log "warning: pip check reports unmet requirements after installing $base"
    printf '%s\n' "$expected" >"$wheel_stamp.tmp" && mv -f -- "$wheel_stamp.tmp" "$wheel_stamp" \
        || die "cannot write stamp $wheel_stamp"
}

if base_up_to_date; then
    log "venv up to date: $venv"
else
    install_base
fi

if [[ -n "$wheel" ]]; then
    install_wheel
fi

printf '%s\n' "$py"
