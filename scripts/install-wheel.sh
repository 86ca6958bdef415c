#!/usr/bin/env bash
# Installs the aimm_backend wheel (target/wheels/, made by build-wheel.sh)
# into the venv of PYTHON, unless that exact wheel is installed already.
#
#   scripts/install-wheel.sh VENV_PYTHON [WHEEL]
#
# The venv keeps the sha256 of the wheel it has in .aimm-backend-wheel.stamp,
# so a re-run costs a checksum. Concurrent callers are serialised by flock.
set -euo pipefail

die() {
    printf 'install-wheel.sh: error: %s\n' "$*" >&2
    exit 1
}

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
[[ $# -ge 1 ]] || die "usage: install-wheel.sh VENV_PYTHON [WHEEL]"
python=$1
wheel=${2:-}
if [[ -z $wheel ]]; then
    shopt -s nullglob
    wheels=("$repo_root"/target/wheels/aimm_backend-*.whl)
    [[ ${#wheels[@]} -eq 1 ]] \
        || die "expected one aimm_backend wheel in target/wheels, found ${#wheels[@]}: run scripts/build-wheel.sh"
    wheel=${wheels[0]}
fi
[[ -f $wheel ]] || die "no wheel at $wheel"
[[ -x $python ]] || die "no python at $python"
venv=$(cd -- "$(dirname -- "$python")/.." && pwd)
stamp=$venv/.aimm-backend-wheel.stamp

exec 9>"$venv/.aimm-backend-wheel.lock" || die "cannot open the lock in $venv"
flock 9 || die "cannot lock $venv"
sum=$(sha256sum "$wheel" | cut -d' ' -f1)
if [[ "$(cat "$stamp" 2>/dev/null)" == "$sum" ]] \
    && "$python" -c "import aimm_backend._native" 2>/dev/null; then
    exit 0
fi
rm -f "$stamp"
"$python" -m pip install --disable-pip-version-check --no-input --quiet \
    --no-deps --force-reinstall "$wheel" >&2 \
    || die "pip install of $wheel into $venv failed"
"$python" -c "import aimm_backend._native" >&2 || die "aimm_backend does not import in $venv"
printf '%s' "$sum" >"$stamp"
