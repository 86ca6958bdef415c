# Shared by scripts/python-venv.sh and scripts/python-server-venv.sh: make
# (or reuse) one virtual environment holding an exact set of pinned packages.
#
# Source it, define die() and log(), set
#   venv           the venv directory
#   base_python    the interpreter that creates it
#   pins           array of "name==version"
#   check_imports  Python code that must run after installation
#   stamp_name     file name of the stamp inside the venv
# and call ensure_pinned_venv. It sets `py` to the venv's interpreter. A
# stamp records the interpreter and the pins; when it matches and the
# imports work, nothing is reinstalled. Callers are serialised with flock(1)
# on "<venv>.lock" (held until the calling script exits).

ensure_pinned_venv() {
    command -v "$base_python" >/dev/null 2>&1 \
        || die "interpreter '$base_python' not found (set AIMM_TEST_PYTHON)"
    local base_version
    base_version=$("$base_python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])') \
        || die "cannot run '$base_python'"
    case "$base_version" in
        3.1[0-9].*) ;;
        *) die "aimm 1.2.dev1 needs Python >=3.10, '$base_python' is $base_version" ;;
    esac

    mkdir -p -- "$(dirname -- "$venv")" || die "cannot create parent of $venv"
    venv=$(cd -- "$(dirname -- "$venv")" && pwd)/$(basename -- "$venv")
    py=$venv/bin/python
    local stamp=$venv/$stamp_name expected_stamp
    expected_stamp=$(printf 'python=%s\n' "$base_version"; printf '%s\n' "${pins[@]}")

    exec 9>"$venv.lock" || die "cannot open lock file $venv.lock"
    flock 9 || die "cannot lock $venv.lock"

    if [[ -x "$py" && -f "$stamp" ]] \
        && [[ "$(cat -- "$stamp")" == "$expected_stamp" ]] \
        && "$py" -c "$check_imports" >/dev/null 2>&1; then
        log "venv up to date: $venv"
        return
    fi

    rm -f -- "$stamp"
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

    log "installing ${#pins[@]} pinned packages: ${pins[*]}"
    "$py" -m pip install --disable-pip-version-check --no-input \
        "${pins[@]}" >&2 \
        || die "pip install failed for: ${pins[*]}"

    "$py" -m pip check --disable-pip-version-check >&2 \
        || die "pip check reports broken requirements in $venv"

    local pin name want have
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
}
