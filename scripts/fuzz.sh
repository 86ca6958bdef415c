#!/usr/bin/env bash
# Build the coverage-guided fuzz targets of hat-eventer-client (fuzz/, with
# libFuzzer through the libfuzzer-sys crate, on stable Rust) and run each
# for a bounded time.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     # default 30
#   FUZZ_TARGETS="sbs_decode" scripts/fuzz.sh 600
#
# Targets (fuzz/fuzz_targets/): sbs_decode (the SBS decoders of the
# HatEventer messages and HatChatter.Msg) and chatter_frame (the Chatter
# frame reader, connection::read_frame). Each starts from its seed corpus in
# fuzz/corpus/TARGET, which is only read: inputs found to add coverage go to
# a temporary directory that is removed at the end (keep them with
# FUZZ_KEEP_CORPUS=DIR; see fuzz/README.md for adding some to the seeds).
# Crashing inputs are saved under fuzz/artifacts/TARGET/ (ignored by git).
#
# The build goes to fuzz/target (its own target directory: the fuzzing
# RUSTFLAGS never touch the workspace's build cache), for the host triple
# given explicitly so that build scripts and proc macros are built without
# instrumentation. No sanitizer: -Zsanitizer needs nightly; memory
# safety rests on the crate having no unsafe code, and the targets count
# allocations themselves (see fuzz/src/lib.rs).
#
# Exits non-zero, printing the crashing input and how to reproduce it, when a
# target crashes (a panic, an abort, an allocation beyond the bounds, a
# timeout, the RSS limit). Fails, never skips, when something it needs is
# missing (cargo, a C++ compiler for libFuzzer, timeout).
set -euo pipefail

die() {
    printf 'fuzz.sh: error: %s\n' "$*" >&2
    exit 1
}
log() {
    printf 'fuzz.sh: %s\n' "$*" >&2
}

seconds=${1:-30}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || die "SECONDS_PER_TARGET must be a positive integer, not '$seconds'"
[[ $# -le 1 ]] || die "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]"
targets=${FUZZ_TARGETS:-sbs_decode chatter_frame}
rss_limit_mb=512
malloc_limit_mb=512
max_len=4096
input_timeout=10

repo_root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

command -v cargo >/dev/null || die "cargo not found"
command -v rustc >/dev/null || die "rustc not found"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
cxx=${CXX:-c++}
command -v "$cxx" >/dev/null || die "a C++ compiler ('$cxx', or \$CXX) is needed to build libFuzzer"

host=$(rustc -vV | sed -n 's/^host: //p')
[[ -n $host ]] || die "cannot tell the host triple from 'rustc -vV'"

# What cargo-fuzz passes, less -Zsanitizer (nightly only).
export RUSTFLAGS="-Cpasses=sancov-module \
-Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
-Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
unset CARGO_ENCODED_RUSTFLAGS RUSTC_WRAPPER
export CARGO_TARGET_DIR=$repo_root/fuzz/target

bin_args=()
for target in $targets; do
    [[ -f fuzz/fuzz_targets/$target.rs ]] || die "no fuzz target '$target' (fuzz/fuzz_targets/$target.rs)"
    [[ -d fuzz/corpus/$target ]] || die "no seed corpus fuzz/corpus/$target"
    bin_args+=(--bin "$target")
done

build=(cargo build --release --locked --manifest-path fuzz/Cargo.toml --target "$host" "${bin_args[@]}")
build_start=$SECONDS
log "building ${targets} (release, instrumented, into $CARGO_TARGET_DIR)"
"${build[@]}"
log "build took $((SECONDS - build_start)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/aimm-fuzz.XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# Lines left out of the output (the full log is kept until the end): each
# new or reduced input, and the recommended dictionary.
quiet='^#[0-9]+[[:space:]]+(NEW|REDUCE) |^[[:space:]]+NEW_FUNC|# Uses: [0-9]+$'
summary=()
failed=()
for target in $targets; do
    binary=$CARGO_TARGET_DIR/$host/release/$target
    [[ -x $binary ]] || die "the build left no $binary"
    new_corpus=$work/corpus/$target
    artifacts=$repo_root/fuzz/artifacts/$target
    mkdir -p "$new_corpus" "$artifacts"
    log "running $target for ${seconds} s (seeds: fuzz/corpus/$target, read only)"
    status=0
    # New inputs go to the first corpus directory only; the seeds are read.
    timeout --kill-after=10 $((seconds + 120)) "$binary" \
        -max_total_time="$seconds" \
        -rss_limit_mb="$rss_limit_mb" \
        -malloc_limit_mb="$malloc_limit_mb" \
        -max_len="$max_len" \
        -timeout="$input_timeout" \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" \
        "$new_corpus" "fuzz/corpus/$target" 2>&1 \
        | tee "$work/$target.log" | grep --line-buffered -vE "$quiet" >&2 \
        || status=${PIPESTATUS[0]}
    # "#RUNS DONE cov: ... exec/s: ..." as "RUNS runs, cov: ... exec/s: ...".
    done_line=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE[[:space:]]*/\1 runs, /p' "$work/$target.log" | tail -n 1)
    if [[ $status -eq 0 ]] && ! grep -q 'inline 8-bit counters' "$work/$target.log"; then
        log "$target: libFuzzer found no coverage counters (is the build instrumented?)"
        status=1
    elif [[ $status -eq 0 && -z $done_line ]]; then
        log "$target: libFuzzer exited without its DONE line"
        status=1
    fi
    if [[ $status -ne 0 ]]; then
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/$target.log" | tail -n 1)
        summary+=("$target: FAILED (exit $status)")
        failed+=("$target")
        log "$target FAILED (exit $status)"
        if [[ -n $crash ]]; then
            log "crashing input: $crash"
            log "reproduce (the binary is built by this script): $binary $crash"
        elif [[ $status -eq 124 || $status -eq 137 ]]; then
            log "$target did not stop within $((seconds + 120)) s"
        fi
    else
        new=$(find "$new_corpus" -type f | wc -l)
        summary+=("$target: ok, $done_line, $new new inputs")
    fi
    if [[ -n ${FUZZ_KEEP_CORPUS:-} ]]; then
        mkdir -p "$FUZZ_KEEP_CORPUS/$target"
        cp -- "$new_corpus"/* "$FUZZ_KEEP_CORPUS/$target/" 2>/dev/null || true
    fi
done

printf '\nfuzz.sh summary (%s s per target):\n' "$seconds" >&2
printf '  %s\n' "${summary[@]}" >&2
if [[ ${#failed[@]} -gt 0 ]]; then
    die "failed: ${failed[*]} (crashing inputs, if any, under fuzz/artifacts/)"
fi
