//! Helpers shared by the cross-crate tests: where the built artifacts are,
//! running the CLI in isolation, building the out-of-tree example plugin,
//! and the Python reference environment.
//!
//! The tests expect `cargo build --release --workspace` to have run (the
//! README's test command does it); a missing artifact fails the test.

mod hat;
mod measure;

pub use hat::{
    connected_client, event_plugin, query_raw, redundant_group, register_raw, status_of,
    wait_status,
};
pub use measure::{assert_peak_within, run_measured};

use aimm_backend_api::{Backend, EventClient};
use aimm_backend_loader::{Prepared, SearchPath, ServerConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

/// What the tests share with the benchmarks (`aimm-backend-test-support`):
/// the workspace root, commands with deadlines, the Python reference venv,
/// a real Hat event server and the tests' payload generator.
pub use aimm_backend_test_support::{
    describe, output_within, payload::test_bytes, python, wait_within, within_for, workspace_root,
    HatMonitor, HatServer, PostgresServer, BUILD_DEADLINE, COMMAND_DEADLINE,
};

/// `target/release`, where the CLI and the built-in plugins are.
///
/// With `AIMM_TESTS_REBUILD` set and not empty (`scripts/mutants.sh` sets it), they are
/// rebuilt first, once per test process: `cargo test` builds only what the
/// tests link, and a mutated plugin or CLI must not be tested through the
/// unmutated library or binary of an earlier build.
pub fn release_dir() -> PathBuf {
    static REBUILT: OnceLock<()> = OnceLock::new();
    if rebuild_asked() {
        REBUILT.get_or_init(rebuild_release_artifacts);
    }
    let dir = target_dir().join("release");
    assert!(
        dir.join("aimm-backend").is_file(),
        "{} has no aimm-backend binary: run `cargo build --release --workspace` first",
        dir.display()
    );
    dir
}

fn rebuild_asked() -> bool {
    std::env::var_os("AIMM_TESTS_REBUILD").is_some_and(|v| !v.is_empty())
}

/// With `AIMM_TESTS_REBUILD` (see [`release_dir`]), the wheel is rebuilt
/// from this tree first, once per test process, with the CLI and plugins it
/// carries: a mutated extension must not be tested through an earlier
/// wheel.
fn rebuild_wheel_if_asked() {
    static REBUILT: OnceLock<()> = OnceLock::new();
    if !rebuild_asked() {
        return;
    }
    REBUILT.get_or_init(|| {
        release_dir();
        let output = output_within(
            Command::new("bash").arg(workspace_root().join("scripts/build-wheel.sh")),
            BUILD_DEADLINE,
            "rebuilding the aimm_backend wheel",
        );
        assert!(
            output.status.success(),
            "rebuilding the aimm_backend wheel:\n{}",
            describe(&output)
        );
    });
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn rebuild_release_artifacts() {
    let output = output_within(
        cargo()
            .current_dir(workspace_root())
            .args(["build", "--release", "--quiet"])
            .args(["-p", "aimm-backend-cli"])
            .args(["-p", "aimm-backend-sqlite"])
            .args(["-p", "aimm-backend-event"])
            .args(["-p", "aimm-backend-postgres"]),
        BUILD_DEADLINE,
        "rebuilding the CLI and the built-in plugins",
    );
    assert!(
        output.status.success(),
        "rebuilding the CLI and the built-in plugins:\n{}",
        describe(&output)
    );
}

/// Prepares the plugin library file `plugin` with the `backend` section
/// `conf` through the loader's one entry point ([`aimm_backend_loader::Opener`]), lending it
/// `client` if given.
pub fn prepare_plugin(
    plugin: &Path,
    mut conf: serde_json::Value,
    client: Option<Arc<dyn EventClient>>,
) -> Prepared {
    conf["module"] = plugin.to_string_lossy().as_ref().into();
    let config = ServerConfig::from_value(serde_json::json!({ "backend": conf }), "test config")
        .expect("the test config is valid");
    let mut opener = aimm_backend_hat_host::opener(SearchPath::from_dirs(Vec::new()));
    if let Some(client) = client {
        opener = opener.with_event_client(client);
    }
    opener.prepare(&config).expect("the plugin loads")
}

/// A backend of `plugin` on `conf` (see [`prepare_plugin`]).
pub fn open_plugin(
    plugin: &Path,
    conf: serde_json::Value,
    client: Option<Arc<dyn EventClient>>,
) -> Arc<dyn Backend> {
    prepare_plugin(plugin, conf, client)
        .create()
        .expect("the backend opens")
}

/// The built-in SQLite plugin library.
pub fn sqlite_plugin() -> PathBuf {
    let path = release_dir().join("libaimm_backend_sqlite.so");
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// A CLI invocation isolated from the user's environment: its embedded
/// default store lives under `home`, and AIMM_BACKEND_PATH is unset.
pub fn cli(home: &Path) -> Command {
    let mut command = Command::new(cli_binary());
    isolate(&mut command, home);
    command
}

/// The `aimm-backend` binary of [`release_dir`].
pub fn cli_binary() -> PathBuf {
    release_dir().join("aimm-backend")
}

/// Isolates `command` (the CLI, or a wrapper that runs it) under `home`:
/// its own data directory, no plugin path or log filter from the caller.
pub fn isolate<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command
        .env("XDG_DATA_HOME", home.join("data"))
        .env("HOME", home)
        .env_remove("AIMM_BACKEND_PATH")
        .env_remove("AIMM_BACKEND_LOG")
        .env_remove(aimm_backend_loader::ALLOW_UNSAFE_ENV)
}

/// Runs `command`, asserting it exits with `code`; returns its output.
pub fn run_expecting(command: &mut Command, code: i32) -> Output {
    let what = format!("{command:?}");
    let output = output_within(command, COMMAND_DEADLINE, &what);
    assert_eq!(
        output.status.code(),
        Some(code),
        "{command:?}\n{}",
        describe(&output)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked"),
        "a panic reached the user:\n{stderr}"
    );
    output
}

/// `aimm-backend --conf CONF put MODEL_TYPE FILE`, which must succeed; the
/// instance id it printed.
pub fn put_one(work: &Path, conf: &Path, model_type: &str, file: &Path) -> i64 {
    let output = run_expecting(
        cli(work)
            .arg("--conf")
            .arg(conf)
            .args(["put", model_type])
            .arg(file),
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("put printed {stdout:?}, not an id"))
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// A config file for the SQLite backend at `db`.
pub fn sqlite_conf(dir: &Path, name: &str, db: &Path, extra: &str) -> PathBuf {
    write_file(
        dir,
        name,
        &format!(
            "backend:\n  module: aimm.server.backend.sqlite\n  path: {}\n{extra}",
            db.display()
        ),
    )
}

/// Directory where the out-of-tree example is built, apart from
/// `target/release` so that only `--plugin-dir` can find it.
pub fn examples_target_dir() -> PathBuf {
    workspace_root().join("target").join("examples")
}

/// Builds `examples/memory-backend` as a third party would (its own
/// manifest, not a workspace member) once per test process; returns the `.so`.
pub fn memory_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("examples/memory-backend/Cargo.toml");
            build_cdylib(&manifest, "libmemory_backend.so")
        })
        .clone()
}

/// Builds `tests/plugins/bad-schema-backend` (a plugin whose config schema
/// is not YAML) once per test process; returns the `.so`.
pub fn bad_schema_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("tests/plugins/bad-schema-backend/Cargo.toml");
            build_cdylib(&manifest, "libbad_schema_backend.so")
        })
        .clone()
}

/// Builds `tests/plugins/panicky-backend` (a plugin whose writes panic) once
/// per test process; returns the `.so`.
pub fn panicky_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let manifest = workspace_root().join("tests/plugins/panicky-backend/Cargo.toml");
            build_cdylib(&manifest, "libpanicky_backend.so")
        })
        .clone()
}

/// `0.4.0` -> `0.5.0`: a version the loader must refuse.
pub fn next_minor(version: &str) -> String {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap());
    let (major, minor) = (parts.next().unwrap(), parts.next().unwrap());
    format!("{major}.{}.0", minor + 1)
}

/// Copies the API crate with its version set to `version` and builds the
/// memory example against that copy.
pub fn build_plugin_against_api_version(version: &str) -> PathBuf {
    let root = workspace_root();
    let work = examples_target_dir().join(format!("api-{version}"));
    let api = work.join("api");
    let plugin = work.join("plugin");
    for dir in [api.join("src"), api.join("doc"), plugin.join("src")] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // The sources, and the docs' example they include.
    for part in ["src", "doc"] {
        for entry in std::fs::read_dir(root.join("crates/aimm-backend-api").join(part)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), api.join(part).join(entry.file_name())).unwrap();
        }
    }
    let api_manifest: String =
        std::fs::read_to_string(root.join("crates/aimm-backend-api/Cargo.toml"))
            .unwrap()
            .lines()
            .map(|line| standalone_manifest_line(line, version))
            .collect::<Vec<_>>()
            .join("\n");
    std::fs::write(
        api.join("Cargo.toml"),
        format!("{api_manifest}\n[workspace]\n"),
    )
    .unwrap();
    std::fs::copy(
        root.join("examples/memory-backend/src/lib.rs"),
        plugin.join("src/lib.rs"),
    )
    .unwrap();
    let plugin_manifest = without_dev_dependencies(
        &std::fs::read_to_string(root.join("examples/memory-backend/Cargo.toml")).unwrap(),
    )
    .replace("../../crates/aimm-backend-api", "../api")
    .replace("name = \"memory-backend\"", "name = \"other-api-backend\"");
    std::fs::write(plugin.join("Cargo.toml"), plugin_manifest).unwrap();
    let lock = root.join("examples/memory-backend/Cargo.lock");
    std::fs::copy(&lock, plugin.join("Cargo.lock")).unwrap();
    build_cdylib(&plugin.join("Cargo.toml"), "libother_api_backend.so")
}

/// `manifest` without its `[dev-dependencies]` table: the copy builds only
/// the library, and the example's conformance dev-dependency is a path
/// that does not exist beside the copy.
fn without_dev_dependencies(manifest: &str) -> String {
    let mut in_dev = false;
    manifest
        .lines()
        .filter(|line| {
            if line.starts_with('[') {
                in_dev = line.trim() == "[dev-dependencies]";
            }
            !in_dev
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One line of the API crate's manifest, with workspace inheritance replaced
/// by explicit values so the copy builds on its own.
fn standalone_manifest_line(line: &str, version: &str) -> String {
    match line.split_whitespace().next() {
        Some("version.workspace") | Some("version") => format!("version = \"{version}\""),
        Some("edition.workspace") => "edition = \"2021\"".to_string(),
        Some("license.workspace") | Some("rust-version.workspace") => String::new(),
        Some("abi_stable.workspace") => {
            "abi_stable = { version = \"0.11.3\", default-features = false }".to_string()
        }
        Some("log.workspace") => "log = { version = \"0.4\", features = [\"std\"] }".to_string(),
        Some("serde_json.workspace") => "serde_json = \"1\"".to_string(),
        Some("thiserror.workspace") => "thiserror = \"2\"".to_string(),
        Some(key) if key.ends_with(".workspace") => {
            panic!("update standalone_manifest_line for `{line}`")
        }
        _ => line.to_string(),
    }
}

/// `cargo build --release` of the crate at `manifest` into
/// [`examples_target_dir`]; returns the library `lib_name`.
pub fn build_cdylib(manifest: &Path, lib_name: &str) -> PathBuf {
    let target = examples_target_dir();
    let output = output_within(
        cargo()
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(manifest)
            .env("CARGO_TARGET_DIR", &target),
        BUILD_DEADLINE,
        &format!("building {}", manifest.display()),
    );
    assert!(
        output.status.success(),
        "building {}:\n{}",
        manifest.display(),
        describe(&output)
    );
    let path = target.join("release").join(lib_name);
    assert!(path.is_file(), "cargo built no {}", path.display());
    path
}

/// The reference venv's interpreter with the `aimm_backend` wheel of
/// `target/wheels` installed (`scripts/install-wheel.sh`; the README's test
/// command builds the wheel first). Fails when there is no wheel.
pub fn package_python() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            rebuild_wheel_if_asked();
            let python = python();
            let output = output_within(
                Command::new("bash")
                    .arg(workspace_root().join("scripts/install-wheel.sh"))
                    .arg(&python),
                BUILD_DEADLINE,
                "installing the aimm_backend wheel",
            );
            assert!(
                output.status.success(),
                "the aimm_backend wheel could not be installed:\n{}",
                describe(&output)
            );
            python
        })
        .clone()
}

/// The one `aimm_backend` wheel in `target/wheels` (`scripts/build-wheel.sh`
/// makes it; the README's test command runs that first); fails the test when
/// there is none, or more than one.
pub fn built_wheel() -> PathBuf {
    rebuild_wheel_if_asked();
    let wheels: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("target/wheels"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("aimm_backend-") && n.ends_with(".whl"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        wheels.len(),
        1,
        "expected one aimm_backend wheel in target/wheels (scripts/build-wheel.sh makes it), found {wheels:?}"
    );
    wheels.into_iter().next().expect("one wheel")
}

/// The interpreter of the venv that runs the Python AIMM server and its
/// REPL client (`scripts/python-server-venv.sh`), with the `aimm_backend`
/// wheel of `target/wheels` installed. Fails when there is no wheel.
pub fn server_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let wheel = built_wheel();
            let output = output_within(
                Command::new("bash")
                    .arg(workspace_root().join("scripts/python-server-venv.sh"))
                    .env("AIMM_BACKEND_WHEEL", &wheel),
                BUILD_DEADLINE,
                "making the Python server venv",
            );
            assert!(
                output.status.success(),
                "the AIMM server venv could not be made:\n{}",
                describe(&output)
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            let python = PathBuf::from(stdout.lines().last().expect("a path").trim());
            assert!(
                python.is_file(),
                "server venv python {} missing",
                python.display()
            );
            python
        })
        .clone()
}

/// The lines a child prints, read on a thread so that every wait for one
/// has a deadline (a hung child fails the test instead of hanging it).
pub struct ChildLines {
    lines: mpsc::Receiver<String>,
    what: String,
}

impl ChildLines {
    /// Reads `output` (a child's stdout) line by line; `what` names the
    /// child in failures.
    pub fn new(output: impl std::io::Read + Send + 'static, what: &str) -> Self {
        use std::io::BufRead;
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(output)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        ChildLines {
            lines,
            what: what.to_string(),
        }
    }

    /// The next line, or `None` once the output has ended; fails the test if
    /// neither happens within `deadline`.
    pub fn next_within(&self, deadline: Duration) -> Option<String> {
        match self.lines.recv_timeout(deadline) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{}: printed no line within {deadline:?}", self.what)
            }
        }
    }

    /// Every line until the output ends, which must happen within `deadline`.
    pub fn rest_within(&self, deadline: Duration) -> Vec<String> {
        let end = Instant::now() + deadline;
        let mut lines = Vec::new();
        while let Some(line) = self.next_within(end.saturating_duration_since(Instant::now())) {
            lines.push(line);
        }
        lines
    }
}

/// The Python tool driving the real `aimm` SQLite backend.
pub fn python_sqlite_tool() -> Command {
    let mut command = Command::new(python());
    command.arg(workspace_root().join("tests/python/aimm_sqlite_tool.py"));
    command
}

/// Every (id, type, bytes) row of the `models` table, read with plain rusqlite.
pub fn read_models_table(db: &Path) -> Vec<(i64, String, Vec<u8>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut stmt = conn
        .prepare("SELECT id, type, instance FROM models ORDER BY id")
        .expect("prepare");
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get::<_, Option<Vec<u8>>>(2)?.unwrap_or_default(),
            ))
        })
        .expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// `PRAGMA integrity_check` of `db`: "ok" when the file is sound.
pub fn integrity_check(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).expect("open db");
    conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check runs")
}

/// A running `aimm-backend watch --json`, read line by line.
pub struct Watcher {
    child: std::process::Child,
    lines: ChildLines,
}

/// How long a [`Watcher`] waits for a change it expects.
const WATCH_DEADLINE: Duration = Duration::from_secs(60);

impl Watcher {
    /// Starts `watch --json` on `conf`, isolated under `home`.
    pub fn start(home: &Path, conf: &Path) -> Self {
        let mut child = cli(home)
            .arg("--conf")
            .arg(conf)
            .args(["watch", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = ChildLines::new(child.stdout.take().unwrap(), "aimm-backend watch");
        Watcher { child, lines }
    }

    /// The next change it printed, as JSON.
    pub fn next_change(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .next_within(WATCH_DEADLINE)
            .expect("watch printed a line before it ended");
        serde_json::from_str(&line).expect("watch --json prints JSON")
    }

    /// Stops it with SIGTERM, which must end it cleanly with exit 0.
    pub fn stop(self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let output = wait_within(
            self.child,
            WATCH_DEADLINE,
            "aimm-backend watch after SIGTERM",
        );
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    }
}
