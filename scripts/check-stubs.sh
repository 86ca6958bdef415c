#!/usr/bin/env bash
# Checks the type stubs of the Python package's native half
# (crates/aimm-backend-py/python/aimm_backend/_native.pyi) against the
# module the wheel in target/wheels/ holds, with mypy's stubtest: a function,
# method or argument added, removed or renamed on one side only fails it.
#
#   scripts/check-stubs.sh [VENV_PYTHON]   # default: the test venv's python
#
# Installs the wheel into that venv first (scripts/install-wheel.sh) and
# fails, never skips, when mypy is missing there.
set -euo pipefail

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
python=${1:-$(bash "$repo_root/scripts/python-venv.sh" | tail -n 1)}
bash "$repo_root/scripts/install-wheel.sh" "$python" >/dev/null
"$python" -c "import mypy.stubtest" \
    || { echo "check-stubs.sh: error: mypy is not installed in $python's venv (scripts/python-venv.sh pins it)" >&2; exit 1; }
# In a directory of its own: mypy's cache must not land in the tree.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$python" -m mypy.stubtest aimm_backend._native
