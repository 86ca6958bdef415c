//! The stock Python AIMM server (`python -m aimm.server`, aimm 1.2.dev1),
//! unmodified, running our backends through the `aimm_backend` package:
//! one line of its config changed. Driven through the server's own REPL
//! client by `tests/python/aimm_server_driver.py`: create a model instance,
//! fit, predict, stop the server, start it again, and the model is there
//! with the same id and answers predict.
//!
//! aimm 1.2.dev1's engine cannot predict on a model it loaded at start-up
//! with any backend (it creates the per-model locks only for models set
//! after start); the driver then re-adopts the model through the REPL's
//! `update_instance`, which stores it once more, and predicts again.
//!
//! The same roundtrip also runs through the server's event control
//! (`aimm.server.control.event`, driver scenario `event-roundtrip`): every
//! request is a Hat event registered by the driver's own eventer client, and
//! the answers are the control's action-state and state events.

use aimm_backend_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `aimm_server_driver.py roundtrip` with `backend` as the backend section.
fn roundtrip(work: &Path, backend: &str, extra: &[&str]) -> Value {
    run_driver(work, "roundtrip", backend, extra)
}

/// `aimm_server_driver.py SCENARIO` with `backend` as the backend section:
/// its JSON report, which says "ok".
fn run_driver(work: &Path, scenario: &str, backend: &str, extra: &[&str]) -> Value {
    let backend_yaml = write_file(work, "backend.yaml", backend);
    let mut command = Command::new(server_python());
    command
        .arg(workspace_root().join("tests/python/aimm_server_driver.py"))
        .arg(scenario)
        .arg("--backend-yaml")
        .arg(&backend_yaml)
        .arg("--workdir")
        .arg(work.join("server"))
        .args(extra)
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .env_remove("AIMM_BACKEND_PATH");
    let output = output_within(
        &mut command,
        Duration::from_secs(600),
        &format!("the AIMM server {scenario}"),
    );
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let start = stdout.find('{').expect("the driver prints JSON");
    let report: Value = serde_json::from_str(&stdout[start..]).expect("JSON report");
    assert_eq!(report["ok"], true, "{report}");
    report
}

/// A server run stopped by SIGTERM exits 0, leaves no process behind, and
/// logs no "Task was destroyed" and no exception but `allowed` and the
/// stock server's own spawn race ([`is_stock_spawn_race`]).
fn assert_clean_stop(run: &Value, allowed: &[String]) {
    let stop = &run["stop"];
    assert_eq!(stop["exit_code"], 0, "{run}");
    assert_eq!(stop["killed_after_timeout"], false, "{run}");
    assert_eq!(
        stop["leftover_group_processes"],
        Value::Array(vec![]),
        "{run}"
    );
    assert_eq!(stop["task_destroyed"], 0, "{run}");
    let tracebacks = stop["traceback_list"].as_array().expect("traceback_list");
    assert_eq!(stop["tracebacks"], tracebacks.len(), "{run}");
    let is_allowed = |exception: &Value| allowed.iter().any(|a| a == exception);
    for traceback in tracebacks {
        assert!(
            is_allowed(&traceback["exception"]) || is_stock_spawn_race(traceback),
            "unexpected traceback in the server log: {traceback}\n{run}"
        );
    }
    // Exceptions logged without a traceback are not excused by a race.
    for exception in stop["exceptions"].as_array().unwrap() {
        let raced = tracebacks
            .iter()
            .any(|t| t["exception"] == *exception && is_stock_spawn_race(t));
        assert!(
            is_allowed(exception) || raced,
            "unexpected exception in the server log: {exception}\n{run}"
        );
    }
}

/// Where the stock server spawns a task into the group of one REPL
/// connection on every engine state change: the REPL control's
/// `subscribe_to_state_change(lambda: self.async_group.spawn(...))`
/// (`aimm/server/control/repl.py`) and the juggler connection's state sync
/// loop (`hat/juggler/server.py`, `_sync_loop`).
const STOCK_SPAWN_SITES: [&str; 2] = [
    "aimm/server/control/repl.py:<lambda>",
    "hat/juggler/server.py:_sync_loop",
];

/// What `hat.aio.Group.spawn` raises into a closed group.
const GROUP_CLOSED: &str = "hat.aio.group.GroupClosedError: can't spawn task in closed group";

/// The stock server's own race, whatever the backend: a state change that
/// arrives just after the driver's REPL connection closed (a forked
/// worker's late progress report) makes one of [`STOCK_SPAWN_SITES`] spawn
/// into the closed group, which raises there and ends only that
/// connection's task. Seen about once in twenty runs of this file under
/// load, at either site; excused only with that exception raised by
/// `hat.aio.Group.spawn` called from one of those sites.
fn is_stock_spawn_race(traceback: &Value) -> bool {
    let frames: Vec<&str> = traceback["frames"]
        .as_array()
        .map(|frames| frames.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    traceback["exception"] == GROUP_CLOSED
        && matches!(
            frames.as_slice(),
            [.., caller, "hat/aio/group.py:spawn"] if STOCK_SPAWN_SITES.contains(caller)
        )
}

/// The model of the first run is back after the restart, same id, type and
/// content, and answers predict; a new model gets a new id.
fn assert_restored(report: &Value) {
    let (run1, run2) = (&report["run1"], &report["run2"]);
    let id = run1["instance_id"].as_i64().unwrap();
    assert_eq!(run2["instance_id"], id, "{report}");
    assert_eq!(run2["model_type"], "aimm_test_models.Blob", "{report}");
    assert_eq!(run2["state_content_ok"], true, "{report}");
    let answered = if run2["direct_predict"]["ok"] == true {
        &run2["direct_predict"]
    } else {
        &run2["readopted_predict"]
    };
    assert_eq!(answered["ok"], true, "{report}");
    assert_eq!(
        answered["prediction"]["sha256"], run1["prediction"]["sha256"],
        "{report}"
    );
    assert_eq!(run2["new_model"]["collides"], false, "{report}");
    assert_eq!(run2["new_model"]["first_model_intact"], true, "{report}");
    assert_clean_stop(run1, &[]);
    // The stock engine's KeyError for a restored model, and nothing else.
    assert_clean_stop(run2, &[format!("KeyError: {id}")]);
}

#[test]
fn the_stock_server_runs_aimm_backend_sqlite_across_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let report = roundtrip(
        work.path(),
        "module: aimm_backend.sqlite\npath: models.db\n",
        &["--strict-new-id"],
    );
    assert_restored(&report);
    let db = work.path().join("server/models.db");
    assert_eq!(read_models_table(&db).len(), 2, "{report}");
    assert_eq!(integrity_check(&db), "ok");
}

#[test]
fn the_stock_server_runs_aimm_backend_postgres_across_a_restart() {
    let server = PostgresServer::start();
    let work = tempfile::tempdir().unwrap();
    let backend = format!(
        "module: aimm_backend.postgres\nurl: {}\npassword_file: {}\ntls: 'off'\nschema: served\n",
        server.url(),
        server.password_file().display()
    );
    let report = roundtrip(work.path(), &backend, &["--strict-new-id"]);
    assert_restored(&report);
    assert_eq!(
        server.psql("SELECT count(*) FROM served.aimm_models"),
        "2",
        "{report}"
    );
}

#[test]
fn the_stock_server_runs_aimm_backend_event_across_a_restart() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let report = roundtrip(
        work.path(),
        "module: aimm_backend.event\nmodel_prefix: [aimm, model]\n",
        &["--strict-new-id", "--hat-port", &server.port.to_string()],
    );
    // The stock event backend fails here: its first model after a restart
    // takes the newest stored id and overwrites that model.
    assert_restored(&report);
    // Weaker durability than configured is said, once per server process,
    // in the server's own log.
    let log = std::fs::read_to_string(work.path().join("server/server-1.log")).unwrap();
    assert_eq!(
        log.matches("acknowledge: persisted cannot be honoured")
            .count(),
        1,
        "{log}"
    );
}

/// The stock server with `hat.monitor_component` and `aimm_backend.event`,
/// under a real hat-monitor with two real event servers: create, fit and
/// predict through server 1; server 1 stops. The server closes its runner
/// (backend, engine, controls); aimm 1.2.dev1 then serves nothing more (its
/// `HatRunner` closes with the first runner, so hat.event.component's
/// rebuild never comes), and the driver restarts it, as an operator would.
/// Through server 2: predict again on the same model, and a new model gets
/// a new id, the first one intact.
#[test]
fn the_stock_server_follows_a_fail_over_with_aimm_backend_event() {
    let (monitor, first, _second) = redundant_group();
    let work = tempfile::tempdir().unwrap();
    let stop_first = format!(
        "bash {} stop {}",
        workspace_root()
            .join("scripts/hat-event-server.sh")
            .display(),
        first.dir().display()
    );
    let report = run_driver(
        work.path(),
        "failover",
        "module: aimm_backend.event\nmodel_prefix: [aimm, model]\n",
        &[
            "--strict-new-id",
            "--monitor-port",
            &monitor.port.to_string(),
            "--fail-over-command",
            &stop_first,
        ],
    );
    assert_eq!(report["runner_rebuilt"], false, "aimm changed: {report}");
    // Restored through server 2: the same model, predicting as before;
    // a new model under a new id.
    assert_restored(&report);
}

#[test]
fn the_stock_server_runs_aimm_backend_event_on_its_own_connection_across_a_restart() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let report = roundtrip(
        work.path(),
        &format!(
            "module: aimm_backend.event\nmodel_prefix: [aimm, model]\n\
             eventer_server: {{host: 127.0.0.1, port: {}}}\n",
            server.port
        ),
        &["--strict-new-id", "--hat-port", &server.port.to_string()],
    );
    assert_restored(&report);
    // On its own connection, `acknowledge: persisted` is honoured: the
    // server's log has no word about it.
    let log = std::fs::read_to_string(work.path().join("server/server-1.log")).unwrap();
    assert!(!log.contains("cannot be honoured"), "{log}");
}

#[test]
fn the_stock_server_runs_a_dropped_in_plugin_through_aimm_backend_plugin() {
    let work = tempfile::tempdir().unwrap();
    let plugins = work.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(memory_plugin(), plugins.join("libmemory_backend.so")).unwrap();
    // The memory plugin keeps models for the life of the process only, so
    // one server run: create, fit, predict, clean stop.
    let report = roundtrip(
        work.path(),
        &format!(
            "module: aimm_backend.plugin\nplugin: memory_backend\nplugin_dirs: [{}]\n",
            plugins.display()
        ),
        &["--no-restart"],
    );
    assert_eq!(report["run1"]["prediction"]["fit_count"], 1, "{report}");
    // No traceback in its log but the stock spawn race.
    assert_clean_stop(&report["run1"], &[]);
}

#[test]
fn the_stock_server_is_driven_through_its_event_control_with_aimm_backend_event() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let report = run_driver(
        work.path(),
        "event-roundtrip",
        "module: aimm_backend.event\nmodel_prefix: [aimm, model]\n",
        &["--strict-new-id", "--hat-port", &server.port.to_string()],
    );
    // Same id, type and content after the restart, the first run's digest
    // from predict (directly, or after the re-adopt, which here is an
    // update_instance request), a new id for a new model, clean stops.
    assert_restored(&report);
    let (run1, run2) = (&report["run1"], &report["run2"]);
    let id = run1["instance_id"].as_i64().unwrap();
    for action in ["create_instance", "fit", "predict"] {
        assert_eq!(
            run1["statuses"][action],
            json!(["IN_PROGRESS", "DONE"]),
            "{report}"
        );
    }
    // The event control's first state event after the restart lists the
    // model, by the same id.
    assert_eq!(
        run2["first_state_models"][&id.to_string()],
        "aimm_test_models.Blob",
        "{report}"
    );
    if run2["direct_predict"]["ok"] != true {
        // The engine's quirk: the control answered the predict with
        // IN_PROGRESS only (it registers no FAILED for predict).
        assert_eq!(
            run2["direct_predict"]["statuses"],
            json!(["IN_PROGRESS"]),
            "{report}"
        );
        assert_eq!(run2["readopt"]["statuses"], json!(["DONE"]), "{report}");
    }
    let new_id = run2["new_model"]["instance_id"].as_i64().unwrap();
    assert_ne!(new_id, id, "{report}");
}

#[test]
fn only_the_stock_spawn_race_is_excused() {
    let traceback =
        |exception: &str, frames: &[&str]| json!({"exception": exception, "frames": frames});
    for site in STOCK_SPAWN_SITES {
        assert!(is_stock_spawn_race(&traceback(
            GROUP_CLOSED,
            &["asyncio/events.py:_run", site, "hat/aio/group.py:spawn"]
        )));
        assert!(!is_stock_spawn_race(&traceback(
            "KeyError: 1",
            &[site, "hat/aio/group.py:spawn"]
        )));
    }
    // The same error from anywhere else, e.g. a backend's own task, is not.
    assert!(!is_stock_spawn_race(&traceback(
        GROUP_CLOSED,
        &["aimm_backend/__init__.py:_notify", "hat/aio/group.py:spawn"]
    )));
    assert!(!is_stock_spawn_race(&traceback(
        GROUP_CLOSED,
        &["hat/juggler/server.py:_sync_loop"]
    )));
    assert!(!is_stock_spawn_race(&traceback(GROUP_CLOSED, &[])));
}
