#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, the workspace build,
# unit and doc tests, the cross-crate tests (plugins, CLI, durability) and
# the interop tests against the Python reference, whose venv this makes.
# Fails, never skips, when something the tests need is missing.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

step() { printf '\n== %s\n' "$*" >&2; }

step "the Python reference venv (aimm==1.2.dev1, hat-event==0.9.44, hat-sbs)"
python=$(bash scripts/python-venv.sh | tail -n 1)

step "the Python SBS driver's self-check"
"$python" tests/python/test_sbs_tool.py

step "no two source files of one crate import each other"
python3 scripts/import-cycles.py .

step "cargo fmt --check"
cargo fmt --all --check

step "build (release): the CLI and every built-in plugin"
cargo build --release --workspace

step "the aimm_backend Python wheel (maturin, into target/wheels/)"
bash scripts/build-wheel.sh >/dev/null

step "the type stubs of aimm_backend._native against the built module (mypy.stubtest)"
bash scripts/check-stubs.sh "$python"

step "clippy -D warnings"
cargo clippy --release --workspace --all-targets -- -D warnings

step "clippy -D warnings on the out-of-tree example plugin"
CARGO_TARGET_DIR=target/examples cargo clippy --release \
    --manifest-path examples/memory-backend/Cargo.toml --all-targets -- -D warnings

step "the example plugin's own tests: the conformance suite in-process"
CARGO_TARGET_DIR=target/examples cargo test --release \
    --manifest-path examples/memory-backend/Cargo.toml

step "fmt and clippy -D warnings on the fuzz targets (fuzz/, not a workspace member)"
cargo fmt --check --manifest-path fuzz/Cargo.toml
CARGO_TARGET_DIR=fuzz/target/clippy cargo clippy --release --locked \
    --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings

step "cargo package: the crates a plugin author depends on and the backends, each built from its package"
# Several -p at once: each verifies against the others' packages, as
# crates.io would resolve them. --allow-dirty: also on a working tree.
# Cargo takes registry packages as immutable: it reuses what it unpacked
# under registry/src/-<hash>/ and what it built in target/debug for the same
# name and version, so a crate changed since the last run would be verified
# against its old sources. Start from neither.
packaged=(aimm-backend-api aimm-backend-batcher aimm-backend-conformance aimm-backend-loader aimm-backend-hat-host hat-eventer-client
    hat-monitor-client
    aimm-backend-sqlite aimm-backend-event)
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/
cargo clean --profile dev "${packaged[@]/#/-p}"
cargo package --allow-dirty "${packaged[@]/#/-p}"

step "fuzz: SBS decoder and Chatter frame reader (bounded)"
bash scripts/fuzz.sh 30

step "tests"
cargo test --release --workspace
