//! `aimm-backend` as the `aimm_backend` wheel installs it: into a fresh
//! venv, run by name with that venv's `bin` and the system's directories as
//! the only PATH (no workspace binary reachable), it is the workspace's CLI
//! (same version, commands and exit codes) and finds the wheel's own
//! plugins without `--plugin-dir`. Pointed at a Python server's
//! `server.yaml` it lists, gets, puts, copies and watches that store, and
//! lists what a running Hat event server holds.

use aimm_backend_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// A venv made for this test process with nothing but the wheel in it
/// (`--no-deps`: the command needs none of the Python packages), and the
/// directory holding it.
fn fresh_venv() -> &'static Path {
    static VENV: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, venv) = VENV.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        let made = output_within(
            Command::new(python()).args(["-m", "venv"]).arg(&venv),
            BUILD_DEADLINE,
            "python -m venv",
        );
        assert!(made.status.success(), "{}", describe(&made));
        let installed = output_within(
            Command::new(venv.join("bin/python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--no-deps",
                    "--no-index",
                    "--disable-pip-version-check",
                    "--quiet",
                ])
                .arg(built_wheel()),
            BUILD_DEADLINE,
            "pip install the wheel",
        );
        assert!(installed.status.success(), "{}", describe(&installed));
        (dir, venv)
    });
    venv
}

/// `aimm-backend ARGS`, found on a PATH of the fresh venv's `bin` and the
/// system's directories only, isolated under `home`.
fn wheel_cli(home: &Path) -> Command {
    let path = format!("{}:/usr/bin:/bin", fresh_venv().join("bin").display());
    let mut command = Command::new("aimm-backend");
    command.env_clear().env("PATH", path);
    isolate(&mut command, home);
    command
}

/// The venv's one `lib/pythonX.Y`.
fn only_python_lib(venv: &Path) -> PathBuf {
    let libs: Vec<PathBuf> = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(libs.len(), 1, "{libs:?}");
    libs.into_iter().next().unwrap()
}

fn stdout_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_command_on_the_path_is_the_wheels_own() {
    let work = tempfile::tempdir().unwrap();
    let found = run_expecting(
        Command::new("sh")
            .args(["-c", "command -v aimm-backend"])
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", fresh_venv().join("bin").display()),
            ),
        0,
    );
    assert_eq!(
        stdout_of(&found).trim(),
        fresh_venv().join("bin/aimm-backend").display().to_string()
    );
    let version = run_expecting(wheel_cli(work.path()).arg("--version"), 0);
    assert_eq!(
        stdout_of(&version).trim(),
        format!("aimm-backend {}", env!("CARGO_PKG_VERSION"))
    );
    // The same exit codes: a usage error is 2.
    run_expecting(wheel_cli(work.path()).arg("frobnicate"), 2);
}

#[test]
fn it_finds_the_wheels_plugins_without_a_plugin_dir() {
    let work = tempfile::tempdir().unwrap();
    let output = run_expecting(wheel_cli(work.path()).arg("plugins"), 0);
    let listing = stdout_of(&output);
    let site_packages = only_python_lib(fresh_venv()).join("site-packages/aimm_backend/plugins");
    for (name, file) in [
        ("event", "libaimm_backend_event.so"),
        ("postgres", "libaimm_backend_postgres.so"),
        ("sqlite", "libaimm_backend_sqlite.so"),
    ] {
        let expected = format!(
            "{name}\t{}\t{}\tloaded",
            env!("CARGO_PKG_VERSION"),
            site_packages.join(file).display()
        );
        assert!(
            listing.lines().any(|line| line == expected),
            "no line {expected:?} in:\n{listing}"
        );
    }
    assert_eq!(listing.lines().count(), 3, "{listing}");
}

/// A whole Python AIMM server config, as an operator has it.
fn server_yaml(dir: &Path, name: &str, db: &Path) -> PathBuf {
    write_file(
        dir,
        name,
        &format!(
            "---\nname: aimm\nlog: {{version: 1}}\n\
             engine: {{sigterm_timeout: 5, max_children: 5, check_children_period: 3}}\n\
             backend:\n  module: aimm_backend.sqlite\n  path: {}\n\
             control:\n  - module: aimm.server.control.repl\n    server: {{host: 127.0.0.1, port: 9999}}\n\
             plugins: {{names: [plugins.sklearn]}}\n...\n",
            db.display()
        ),
    )
}

#[test]
fn pointed_at_a_server_config_it_puts_lists_gets_copies_and_watches() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let conf = server_yaml(dir, "server.yaml", &dir.join("models.db"));
    let model = dir.join("model.bin");
    std::fs::write(&model, test_bytes(7, 100_000)).unwrap();

    let put = run_expecting(
        wheel_cli(dir)
            .arg("--conf")
            .arg(&conf)
            // One at a time: the ids then follow the files' order.
            .args(["put", "--jobs", "1", "sklearn.Pipeline"])
            .arg(&model)
            .arg(&model),
        0,
    );
    assert_eq!(stdout_of(&put), "1\n2\n");
    let listed = run_expecting(wheel_cli(dir).arg("--conf").arg(&conf).arg("list"), 0);
    assert_eq!(
        stdout_of(&listed),
        "1\tsklearn.Pipeline\t100000\n2\tsklearn.Pipeline\t100000\n"
    );
    let got = dir.join("got.bin");
    run_expecting(
        wheel_cli(dir)
            .arg("--conf")
            .arg(&conf)
            .args(["get", "2", "-o"])
            .arg(&got),
        0,
    );
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&model).unwrap());
    let missing = run_expecting(
        wheel_cli(dir).arg("--conf").arg(&conf).args(["get", "9"]),
        1,
    );
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no model with instance id 9"),
        "{}",
        describe(&missing)
    );

    let copy = server_yaml(dir, "copy.yaml", &dir.join("copy.db"));
    run_expecting(
        wheel_cli(dir)
            .arg("--conf")
            .arg(&conf)
            .arg("copy")
            .arg("--to")
            .arg(&copy),
        0,
    );
    let copied = run_expecting(wheel_cli(dir).arg("--conf").arg(&copy).arg("list"), 0);
    assert_eq!(stdout_of(&copied), stdout_of(&listed));

    let mut watcher = wheel_cli(dir)
        .arg("--conf")
        .arg(&conf)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = ChildLines::new(watcher.stdout.take().unwrap(), "aimm-backend watch");
    // Let the watcher take its first look, then change the store.
    std::thread::sleep(Duration::from_millis(700));
    run_expecting(
        wheel_cli(dir)
            .arg("--conf")
            .arg(&conf)
            .args(["put", "watched"])
            .arg(&model),
        0,
    );
    let change = lines
        .next_within(Duration::from_secs(30))
        .expect("watch printed a line");
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&change).unwrap(),
        serde_json::json!({"instance_id": 3, "model_type": "watched", "size": 100000})
    );
}

#[test]
fn it_lists_what_a_running_event_server_holds() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let conf = write_file(
        dir,
        "server.yaml",
        &format!(
            "name: wheel-host\nhat:\n  eventer_server: {{host: 127.0.0.1, port: {}}}\n\
             backend:\n  module: aimm_backend.event\n  model_prefix: [aimm, wheel]\n",
            server.port
        ),
    );
    let empty = run_expecting(wheel_cli(dir).arg("--conf").arg(&conf).arg("list"), 0);
    assert_eq!(stdout_of(&empty), "");
    let model = write_file(dir, "m.bin", "event-stored model");
    let put = run_expecting(
        wheel_cli(dir)
            .arg("--conf")
            .arg(&conf)
            .args(["put", "t"])
            .arg(&model),
        0,
    );
    let id = stdout_of(&put).trim().to_string();
    let listed = run_expecting(wheel_cli(dir).arg("--conf").arg(&conf).arg("list"), 0);
    assert_eq!(stdout_of(&listed), format!("{id}\tt\t18\n"));
}
