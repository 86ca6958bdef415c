#!/usr/bin/env bash
# Builds the `aimm_backend` Python wheel (crates/aimm-backend-py) into
# target/wheels/ and prints its path last.
#
#   scripts/build-wheel.sh        # after `cargo build --release --workspace`
#
# The wheel holds the extension module and the built-in plugins
# (target/release/libaimm_backend_{sqlite,event}.so, copied into the
# package's plugins/ directory first). maturin comes from a pinned build venv
# (target/py-build-venv, made here once). Incremental: cargo rebuilds only
# what changed, so a fresh wheel costs seconds.
set -euo pipefail

die() {
    printf 'build-wheel.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'build-wheel.sh: %s\n' "$*" >&2
}

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
maturin_pin="maturin==1.16.0"
base_python=${AIMM_TEST_PYTHON:-python3.11}
venv=target/py-build-venv
package=crates/aimm-backend-py
out=target/wheels

mkdir -p target
exec 9>"target/build-wheel.lock" || die "cannot open target/build-wheel.lock"
flock 9 || die "cannot lock target/build-wheel.lock"

if [[ "$(cat "$venv/.stamp" 2>/dev/null)" != "$maturin_pin" ]]; then
    log "making $venv with $maturin_pin"
    "$base_python" -m venv --clear "$venv" >&2 || die "cannot make $venv with $base_python"
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input "$maturin_pin" >&2 \
        || die "pip install $maturin_pin failed"
    printf '%s' "$maturin_pin" >"$venv/.stamp"
fi

plugins=$package/python/aimm_backend/plugins
mkdir -p "$plugins"
for name in sqlite event; do
    lib=target/release/libaimm_backend_$name.so
    [[ -f $lib ]] || die "$lib is missing: run cargo build --release --workspace first"
    cp -p "$lib" "$plugins/"
done

rm -f "$out"/aimm_backend-*.whl
log "maturin build (release)"
"$venv/bin/maturin" build --release --manifest-path "$package/Cargo.toml" \
    --interpreter "$base_python" --out "$out" >&2 \
    || die "maturin build failed"
wheel=$(ls "$out"/aimm_backend-*.whl 2>/dev/null | head -n 1)
[[ -n $wheel ]] || die "maturin wrote no wheel into $out"
printf '%s\n' "$repo_root/$wheel"
