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
# idempotent: a stamp file inside the venv records the interpreter and the
# pins; when it matches and the packages import, nothing is reinstalled.
# Concurrent callers are serialised with flock(1) on "<venv>.lock".
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
)
# Modules that must import after installation.
check_imports="import aimm.server.backend.sqlite, aimm.server.backend.event, aimm.plugins, hat.event.common, hat.event.eventer, hat.sbs"

command -v "$base_python" >/dev/null 2>&1 \
    || die "interpreter '$base_python' not found (set AIMM_TEST_PYTHON)"
base_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
    || die "cannot run '$base_python'"
case "$base_version" in
    3.1[0-9].*) ;;
    *) die "aimm 1.2.dev1 needs Python >=3.10, '$base_python' is $base_version" ;;
esac

mkdir -p -- "$(dirname -- "$venv")" || die "cannot create parent of $venv"
venv=$(cd -- "$(dirname -- "$venv")" && pwd)/$(basename -- "$venv")
py=$venv/bin/python
stamp=$venv/.aimm-pins.stamp
expected_stamp=$(printf 'python=%s\n' "$base_version"; printf '%s\n' "${pins[@]}")

exec 9>"$venv.lock" || die "cannot open lock file $venv.lock"
flock 9 || die "cannot lock $venv.lock"

if [[ -x "$py" && -f "$stamp" ]] \
    && [[ "$(cat -- "$stamp")" == "$expected_stamp" ]] \
    && "$py" -c "$check_imports" >/dev/null 2>&1; then
    log "venv up to date: $venv"
    printf '%s\n' "$py"
    exit 0
fi

rm -f -- "$stamp"
venv_args=()
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

log "installing: ${pins[*]}"
"$py" -m pip install --disable-pip-version-check --no-input \
    "${pins[@]}" >&2 \
    || die "pip install failed for: ${pins[*]}"

"$py" -m pip check --disable-pip-version-check >&2 \
    || die "pip check reports broken requirements in $venv"

for pin in "${pins[@]}"; do
    name=${pin%%==*}
    want=${pin#*==}
    have=$("$py" -c 'import sys, importlib.metadata as m; print(m.version(sys.argv[1]))' "$name" 2>/dev/null) \
        || die "$name is not installed in $venv"
    [[ "$have" == "$want" ]] || die "$name: wanted $want, installed $have"
done

"$py" -c "$check_imports" >&2 \
    || die "installed packages do not import in $venv"

printf '%s\n' "$expected_stamp" >"$stamp.tmp" && mv -f -- "$stamp.tmp" "$stamp" \
    || die "cannot write stamp $stamp"
log "venv ready: $venv"
printf '%s\n' "$py"
