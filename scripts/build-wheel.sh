#!/usr/bin/env bash
# Builds the `aimm_backend` Python wheel (crates/aimm-backend-py) into
# target/wheels/ and prints its path last.
#
#   scripts/build-wheel.sh        # after `cargo build --release --workspace`
#
# The wheel holds the extension module, the built-in plugins
# (target/release/libaimm_backend_{sqlite,event,postgres}.so, copied into the
# package's plugins/ directory first) and the aimm-backend program
# (target/release/aimm-backend, copied into the wheel's scripts, which pip
# puts on the venv's PATH). The copies leave out the debug line tables the
# release profile keeps (strip --strip-debug): a third of the size. maturin
# comes from a pinned build venv (target/py-build-venv, made here once).
# Incremental: cargo rebuilds only what changed, and a copy is made again
# only when its source is newer, so a fresh wheel costs seconds.
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

command -v strip >/dev/null || die "strip (binutils) is missing: apt-get install binutils"

# copy_stripped SOURCE DEST: DEST is SOURCE without debug sections, mode 755.
copy_stripped() {
    [[ -f $1 ]] || die "$1 is missing: run cargo build --release --workspace first"
    if [[ ! -f $2 || $1 -nt $2 ]]; then
        strip --strip-debug -o "$2.tmp" "$1" || die "strip $1 failed"
        chmod 755 "$2.tmp"
        mv -f "$2.tmp" "$2"
    fi
}

plugins=$package/python/aimm_backend/plugins
scripts=$package/wheel-data/scripts
mkdir -p "$plugins" "$scripts"
for name in sqlite event postgres; do
    copy_stripped "target/release/libaimm_backend_$name.so" "$plugins/libaimm_backend_$name.so"
done
copy_stripped target/release/aimm-backend "$scripts/aimm-backend"

rm -f "$out"/aimm_backend-*.whl
log "maturin build (release)"
"$venv/bin/maturin" build --release --manifest-path "$package/Cargo.toml" \
    --interpreter "$base_python" --out "$out" >&2 \
    || die "maturin build failed"
wheel=$(ls "$out"/aimm_backend-*.whl 2>/dev/null | head -n 1)
[[ -n $wheel ]] || die "maturin wrote no wheel into $out"
printf '%s\n' "$repo_root/$wheel"
