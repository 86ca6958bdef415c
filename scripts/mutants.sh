#!/usr/bin/env bash
# Mutation testing with cargo-mutants of the code that carries the promises
# the README and the crate docs make. Each group mutates its files one
# mutant at a time and runs the tests that guard them; a mutant the tests
# do not catch is a promise nothing checks. MUTANTS.md records the outcome.
#
#   scripts/mutants.sh [GROUP[=FILE_GLOB[,FILE_GLOB]...]]...   # default: every group
#   scripts/mutants.sh sqlite event=crates/aimm-backend-event/src/codec.rs
#   scripts/mutants.sh --summary sqlite          # the table of the last runs
#
# Groups and what runs for each mutant:
#   sqlite  crates/aimm-backend-sqlite/src/{store,open,read,write,checkpoint,group_commit,config,watch}.rs
#           the SQLite crate's own tests (unit, in-process conformance in
#           every journal mode, traced syncs, settings in effect, opening,
#           watch, large updates, peak memory of large writes, bytes written
#           per acknowledged write, commits of unchanged updates) and
#           tests/durability.rs (processes, kill -9,
#           a failed commit through the CLI)
#   event   crates/aimm-backend-event/src/{store,ids,own_writes,latest,claims,codec,lib}.rs
#           the event crate's unit tests and tests/event_backend.rs against
#           a real hat-event-server (conformance, ids, own writes, kills)
#   loader  crates/aimm-backend-loader/src/{library,elf,resolve,safety,config,lib}.rs
#           the loader's unit tests, tests/plugins.rs and tests/safe_loading.rs
#   hathost crates/aimm-backend-hat-host/src/{notified,router}.rs
#           the Hat host's unit tests, tests/eventer_client.rs and
#           tests/event_backend.rs against a real hat-event-server
#   hostclient crates/aimm-backend-hat-host/src/client.rs
#           the Hat host's unit tests and tests/hat_host_client.rs (the
#           host's client in process, on real hat-event-servers)
#   monitor crates/hat-monitor-client/src/{active,client,msg}.rs
#           the monitor client's unit tests, tests/monitor_client.rs (a real
#           hat-monitor and event servers) and tests/sbs_differential.rs
#           (the HatObserver messages against hat-sbs)
#   batcher crates/aimm-backend-batcher/src/lib.rs
#           the batcher's unit tests
#   hat     crates/hat-eventer-client/src/{sbs/*,chatter,connection/*,client/*}.rs
#           the client's unit tests, tests/sbs_differential.rs (against
#           hat-sbs) and tests/eventer_client.rs (real server, fake peers)
#   py      crates/aimm-backend-py/src/*.rs
#           the package's unit tests (an embedded interpreter; MUTANTS_QUICK
#           runs only these) and tests/python_package.rs (the wheel, rebuilt
#           from the mutant, in the reference venv's Python)
#   postgres crates/aimm-backend-postgres/src/*.rs
#           the crate's own tests (unit, in-process conformance, reads under
#           updates, the pool, the watcher, an outage, a hung server) and tests/postgres.rs (the CLI, three processes, crash,
#           restart, WAL, bad configs; all but the 1.5 GiB model), each
#           against a real PostgreSQL 15
#
# Bounded for a 2-core machine: one mutant at a time (-j 1), in a copy of
# the tree that starts from this tree's release build (--copy-target), with
# a per-mutant test timeout (MUTANTS_TIMEOUT seconds, default per group)
# and build timeout. MUTANTS_SHARD=k/n runs one shard of each group;
# MUTANTS_ITERATE=1 keeps a group's earlier outcome and tests only the
# mutants not caught there (cargo-mutants --iterate). MUTANTS_QUICK=1 runs
# only the mutated crate's own tests: a cheap first pass whose survivors a
# following MUTANTS_ITERATE=1 run tests with the group's whole set.
# MUTANTS_RE=FILE tests only the mutants whose names match a line of FILE;
# MUTANTS_TESTS and MUTANTS_FILTERS replace the group's cargo test
# arguments and test filters (see below).
# AIMM_TESTS_REBUILD=1 makes the cross-crate tests rebuild the CLI and the
# plugin libraries from the mutated source before they run (cargo test
# alone would test the unmutated .so of the last build).
#
# Output: target/mutants/GROUP/mutants.out/ (cargo-mutants' caught.txt,
# missed.txt, timeout.txt, unviable.txt, outcomes.json, logs), and a per-file
# table printed and written to target/mutants/GROUP/summary.md.
# Exits non-zero when a group's baseline (its tests on the unmutated tree)
# fails; missed mutants are reported, not failed on.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

die() { echo "scripts/mutants.sh: $*" >&2; exit 1; }

# Incremental release builds: a mutant then rebuilds the crate it changes in
# seconds rather than half a minute (measured on the PostgreSQL crate's test
# binaries: 2-4 s against 30 s). Optimised as before; the builds outside
# this script stay non-incremental.
export CARGO_PROFILE_RELEASE_INCREMENTAL=true
command -v cargo-mutants >/dev/null ||
    die "cargo-mutants is not installed: cargo install cargo-mutants --locked (27.x)"

# The group's files, test packages, cargo test arguments and test filters.
group_config() {
    # MUTANTS_QUICK's tests: the mutated crate's own (unit tests unless a
    # group says more).
    quick_args=(--lib)
    case $1 in
    sqlite)
        files=(crates/aimm-backend-sqlite/src/store.rs
            crates/aimm-backend-sqlite/src/open.rs
            crates/aimm-backend-sqlite/src/read.rs
            crates/aimm-backend-sqlite/src/write.rs
            crates/aimm-backend-sqlite/src/checkpoint.rs
            crates/aimm-backend-sqlite/src/group_commit.rs
            crates/aimm-backend-sqlite/src/config.rs
            crates/aimm-backend-sqlite/src/watch.rs)
        packages=aimm-backend-sqlite,aimm-backend-tests
        test_args=(--lib --test durability --test conformance --test settings_in_effect --test opening --test watch
            --test traced_syncs --test large_updates --test concurrent_writes
            --test get_models --test bytes_written --test unchanged_updates
            --test large_write_memory)
        filters=()
        timeout=${MUTANTS_TIMEOUT:-120}
        rebuild=1
        ;;
    event)
        files=(crates/aimm-backend-event/src/store.rs
            crates/aimm-backend-event/src/ids.rs
            crates/aimm-backend-event/src/own_writes.rs
            crates/aimm-backend-event/src/latest.rs
            crates/aimm-backend-event/src/claims.rs
            crates/aimm-backend-event/src/codec.rs
            crates/aimm-backend-event/src/lib.rs)
        packages=aimm-backend-event,aimm-backend-tests
        test_args=(--lib --test event_backend)
        # The Python interop and the unreachable-server tests exercise the
        # CLI and the client, not these files.
        filters=(--skip python_and_ours --skip an_unreachable --skip monitor_component)
        timeout=${MUTANTS_TIMEOUT:-240}
        rebuild=1
        ;;
    loader)
        files=(crates/aimm-backend-loader/src/library.rs
            crates/aimm-backend-loader/src/elf.rs
            crates/aimm-backend-loader/src/resolve.rs
            crates/aimm-backend-loader/src/safety.rs
            crates/aimm-backend-loader/src/config.rs
            crates/aimm-backend-loader/src/lib.rs)
        packages=aimm-backend-loader,aimm-backend-tests
        test_args=(--lib --test plugins --test safe_loading)
        filters=()
        timeout=${MUTANTS_TIMEOUT:-300}
        rebuild=1
        ;;
    hathost)
        files=(crates/aimm-backend-hat-host/src/notified.rs
            crates/aimm-backend-hat-host/src/router.rs)
        packages=aimm-backend-hat-host,aimm-backend-tests
        test_args=(--lib --test eventer_client --test event_backend)
        filters=(--skip python_and_ours --skip an_unreachable --skip monitor_component)
        timeout=${MUTANTS_TIMEOUT:-240}
        rebuild=1
        ;;
    hostclient)
        files=(crates/aimm-backend-hat-host/src/client.rs)
        packages=aimm-backend-hat-host,aimm-backend-tests
        test_args=(--lib --test hat_host_client)
        # Every test at once: a mutant that breaks the connection makes
        # each test wait for its deadline (15 or 30 s), in parallel then.
        filters=(--test-threads=12)
        timeout=${MUTANTS_TIMEOUT:-180}
        # In process: no CLI or plugin library to rebuild.
        rebuild=
        ;;
    monitor)
        files=(crates/hat-monitor-client/src/active.rs
            crates/hat-monitor-client/src/client.rs
            crates/hat-monitor-client/src/msg.rs)
        packages=hat-monitor-client,aimm-backend-tests
        test_args=(--lib --test monitor_client --test sbs_differential)
        filters=()
        timeout=${MUTANTS_TIMEOUT:-240}
        # These tests run no CLI or plugin library: nothing to rebuild.
        rebuild=
        ;;
    batcher)
        files=(crates/aimm-backend-batcher/src/lib.rs)
        packages=aimm-backend-batcher
        test_args=(--lib)
        filters=()
        # A mutant that hangs a caller fails each test at its 30 s deadline:
        # time enough for all of them to fail rather than time out.
        timeout=${MUTANTS_TIMEOUT:-240}
        rebuild=
        ;;
    hat)
        files=(crates/hat-eventer-client/src/sbs/*.rs
            crates/hat-eventer-client/src/chatter.rs
            crates/hat-eventer-client/src/connection/*.rs
            crates/hat-eventer-client/src/client/*.rs)
        packages=hat-eventer-client,aimm-backend-tests
        test_args=(--lib --test sbs_differential --test eventer_client)
        filters=()
        timeout=${MUTANTS_TIMEOUT:-180}
        # These tests run no CLI or plugin library: nothing to rebuild.
        rebuild=
        ;;
    postgres)
        files=(crates/aimm-backend-postgres/src/*.rs)
        packages=aimm-backend-postgres,aimm-backend-tests
        test_args=(--lib --test conformance --test reads --test pool --test changes --test outage --test hung --test postgres)
        # The 1.5 GiB round trip takes two minutes and guards memory
        # bounds the smaller tests do not reach.
        filters=(--skip 1_5_gib)
        quick_args=(--lib --test conformance --test reads --test pool --test changes --test outage --test hung)
        timeout=${MUTANTS_TIMEOUT:-300}
        rebuild=1
        ;;
    py)
        files=(crates/aimm-backend-py/src/*.rs)
        packages=aimm-backend-py,aimm-backend-tests
        test_args=(--lib --test python_package)
        filters=()
        timeout=${MUTANTS_TIMEOUT:-600}
        # The Python tests run the wheel, rebuilt from the mutated source
        # (tests/common: AIMM_TESTS_REBUILD rebuilds the wheel too).
        rebuild=1
        ;;
    *) die "unknown group $1 (expected sqlite, event, loader, hathost, hostclient, monitor, batcher, hat, postgres or py)" ;;
    esac
}

# Per-file caught / missed / timeout / unviable counts of a group's runs:
# each run's outcome (runs/*, then the last, mutants.out) over the ones
# before it, mutant by mutant, for the mutants the group's files have now
# (a run's outcome for code changed since is left out; a mutant no run has
# tested yet is counted as "not run"). Misses, timeouts and the mutants not
# run are listed on stderr.
summarize() {
    local out=$1
    group_config "$(basename -- "$out")"
    local file_args=()
    for file in "${files[@]}"; do file_args+=(--file "$file"); done
    cargo mutants --list --json "${file_args[@]}" >"$out/current.json"
    python3 - "$out" <<'EOF'
import collections, json, pathlib, sys
out = pathlib.Path(sys.argv[1])
names = {"CaughtMutant": "caught", "MissedMutant": "missed",
         "Timeout": "timeout", "Unviable": "unviable"}
def key(mutant):
    """The mutant without its line: lines added above it between runs move
    it, but leave its function, column and replacement alone."""
    column = mutant["span"]["start"]["column"]
    function = (mutant.get("function") or {}).get("function_name", "")
    _, _, rest = mutant["name"].partition(": ")
    return (mutant["file"], function, column, rest)

current = {key(mutant): mutant for mutant in json.loads((out / "current.json").read_text())}
latest = {}
runs = sorted((out / "runs").glob("*")) if (out / "runs").exists() else []
for run in [*runs, out / "mutants.out"]:
    path = run / "outcomes.json"
    if not path.exists():
        continue
    for outcome in json.loads(path.read_text())["outcomes"]:
        scenario = outcome["scenario"]
        if isinstance(scenario, dict) and "Mutant" in scenario:
            mutant = scenario["Mutant"]
            summary = names.get(outcome["summary"], outcome["summary"])
            if key(mutant) in current:
                latest[key(mutant)] = (mutant["file"], summary, current[key(mutant)]["name"])
for mutant_key, mutant in current.items():
    latest.setdefault(mutant_key, (mutant["file"], "not run", mutant["name"]))
counts = collections.defaultdict(collections.Counter)
for file, summary, _ in latest.values():
    counts[file][summary] += 1
print("| file | caught | missed | timeout | unviable | not run | caught of viable |")
print("|---|---|---|---|---|---|---|")
for file in sorted(counts):
    c = counts[file]
    viable = c["caught"] + c["missed"] + c["timeout"]
    # A timeout is not counted as caught: a hang is not a failure naming
    # the broken promise.
    share = f"{100 * c['caught'] / viable:.0f}%" if viable else "-"
    print(f"| {file} | {c['caught']} | {c['missed']} | {c['timeout']} | {c['unviable']} | {c['not run']} | {share} |")
for file, summary, name in sorted(latest.values(), key=lambda v: v[2]):
    if summary in ("missed", "timeout", "not run"):
        print(f"{summary.upper()}: {name}", file=sys.stderr)
EOF
}

if [ "${1:-}" = --summary ]; then
    shift
    [ $# -gt 0 ] || set -- sqlite event loader hat
    for group in "$@"; do
        [ ! -d "target/mutants/$group" ] || summarize "target/mutants/$group"
    done
    exit 0
fi

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(sqlite event loader hathost hostclient monitor batcher hat)

# MUTANTS_QUICK tests one crate in process: its baseline below builds all
# that needs. Otherwise the CLI and the plugins are built here first.
if [ -z "${MUTANTS_QUICK:-}" ]; then
    echo "== the release build the mutants' copies start from" >&2
    cargo build --release --workspace
    # What a group's tests build with its package selection (another feature
    # unification than --workspace) and what AIMM_TESTS_REBUILD builds: built
    # here once, so that each copy's baseline build is incremental.
    cargo build --release -p aimm-backend-cli -p aimm-backend-sqlite -p aimm-backend-event \
        -p aimm-backend-postgres
fi
python=$(bash scripts/python-venv.sh | tail -n 1)
[ -x "$python" ] || die "the Python reference venv could not be made"

status=0
for spec in "${groups[@]}"; do
    group=${spec%%=*}
    group_config "$group"
    if [ "$spec" != "$group" ]; then
        IFS=, read -r -a files <<<"${spec#*=}"
    fi
    if [ -n "${MUTANTS_QUICK:-}" ]; then
        packages=${packages%%,*},${packages%%,*}
        test_args=("${quick_args[@]}")
        filters=()
        rebuild=
    fi
    # MUTANTS_TESTS / MUTANTS_FILTERS: other cargo test arguments and test
    # filters than the group's, to test a few survivors with the tests that
    # guard them (a mutant they catch, the whole set catches too).
    if [ -n "${MUTANTS_TESTS:-}" ]; then
        read -r -a test_args <<<"$MUTANTS_TESTS"
    fi
    if [ -n "${MUTANTS_FILTERS:-}" ]; then
        read -r -a filters <<<"$MUTANTS_FILTERS"
    fi
    out=target/mutants/$group
    iterate_args=()
    if [ -n "${MUTANTS_ITERATE:-}" ] && [ -d "$out/mutants.out" ]; then
        iterate_args=(--iterate)
        # cargo-mutants keeps only the last run (as mutants.out.old); the
        # summary needs every run's outcome.
        mkdir -p -- "$out/runs"
        cp -r -- "$out/mutants.out" "$out/runs/$(date +%Y%m%d%H%M%S)"
    else
        rm -rf -- "$out"
    fi
    mkdir -p -- "$out"
    file_args=()
    for file in "${files[@]}"; do file_args+=(--file "$file"); done
    cargo_test_args=()
    for arg in "${test_args[@]}"; do cargo_test_args+=("--cargo-test-arg=$arg"); done
    shard_args=()
    [ -z "${MUTANTS_SHARD:-}" ] || shard_args=(--shard "$MUTANTS_SHARD")
    # MUTANTS_RE: a file of regexes (one per line, against the names
    # `cargo mutants --list` prints) to test only those mutants.
    if [ -n "${MUTANTS_RE:-}" ]; then
        while IFS= read -r re; do
            [ -z "$re" ] || shard_args+=(--re "$re")
        done <"$MUTANTS_RE"
    fi
    # The baseline: the unmutated tree must pass the group's tests. Run here,
    # not by cargo-mutants, whose baseline tests only the mutated package
    # (27.1 ignores --test-package there); it also leaves the group's build
    # in target/, where each copy starts from.
    echo "== baseline: $group's tests on the unmutated tree" >&2
    if ! AIMM_TESTS_REBUILD=$rebuild cargo test --release -p "${packages%%,*}" -p "${packages#*,}" \
        "${test_args[@]}" -- "${filters[@]}"; then
        echo "scripts/mutants.sh: $group: the unmutated tree fails its tests" >&2
        status=1
        continue
    fi
    echo "== cargo mutants: $group (${files[*]})" >&2
    set +e
    AIMM_TESTS_REBUILD=$rebuild cargo mutants \
        --profile release --copy-target=true --jobs 1 --baseline skip \
        --timeout "$timeout" --build-timeout 900 \
        --test-package "$packages" "${cargo_test_args[@]}" \
        "${file_args[@]}" "${shard_args[@]}" "${iterate_args[@]}" \
        --output "$out" --colors never \
        -- "${filters[@]}"
    code=$?
    set -e
    # cargo-mutants: 0 all caught, 2 some missed, 3 some timed out; anything
    # else is an error of the run itself.
    case $code in
    0 | 2 | 3) ;;
    *) echo "scripts/mutants.sh: $group: cargo mutants exited $code" >&2; status=1; continue ;;
    esac
    summarize "$out" | tee "$out/summary.md"
done
exit $status
