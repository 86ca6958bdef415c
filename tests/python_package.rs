//! The `aimm_backend` Python package (the wheel built by
//! `scripts/build-wheel.sh`) in real Python, without an AIMM server:
//! concurrent writer processes, files shared with the stock backend, a
//! dropped-in plugin, bad input, the life cycle the server puts a backend
//! through, the event backend through the server's kind of event client,
//! and the deadlock traps. The scenarios are in
//! `tests/python/aimm_backend_checks.py`; this file judges what they print.

use aimm_backend_api::API_VERSION;
use aimm_backend_tests::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Runs one scenario of `aimm_backend_checks.py`; returns what it printed.
fn checks(args: &[&str]) -> (Value, String) {
    let mut command = Command::new(package_python());
    command
        .arg(workspace_root().join("tests/python/aimm_backend_checks.py"))
        .args(args)
        .env("PYTHONWARNINGS", "ignore::DeprecationWarning")
        .env_remove("AIMM_BACKEND_PATH");
    let output = output_within(&mut command, Duration::from_secs(300), &args.join(" "));
    assert!(
        output.status.success(),
        "aimm_backend_checks.py {}\n{}",
        args.join(" "),
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let value = serde_json::from_str(line)
        .unwrap_or_else(|err| panic!("not JSON ({err}):\n{}", describe(&output)));
    (value, String::from_utf8_lossy(&output.stderr).into_owned())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("test paths are UTF-8")
}

#[test]
// The stock backend loses writes and corrupts the file here (DESIGN.md 4).
fn three_writer_processes_lose_nothing_and_leave_a_sound_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("models.db");
    let (result, _) = checks(&[
        "writers",
        "--db",
        path(&db),
        "--processes",
        "3",
        "--count",
        "300",
    ]);
    assert_eq!(result["failures"], Value::Array(vec![]), "{result}");
    assert_eq!(result["acknowledged"], 900, "{result}");
    assert_eq!(result["stored"], 900, "{result}");
    assert_eq!(result["missing"], Value::Array(vec![]), "{result}");
    assert_eq!(result["wrong"], Value::Array(vec![]), "{result}");
    assert_eq!(result["integrity"], "ok", "{result}");
}

#[test]
fn a_stock_file_opens_here_and_the_stock_backend_reads_what_we_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stock.db");
    let (result, _) = checks(&["stock-interop", "--db", path(&db)]);
    assert_eq!(result["ours_read_stock_exactly"], true, "{result}");
    assert_eq!(result["stock_read_ours_exactly"], true, "{result}");
    assert_eq!(
        result["ids"],
        serde_json::json!([1, 2, 3, 4, 5, 6]),
        "{result}"
    );
    assert_eq!(result["ours_new_id"], 6, "{result}");
    // The stock backend's next id continues after ours: nothing reused.
    assert_eq!(result["stock_next_id"], 7, "{result}");
    assert_eq!(result["journal_mode"], "delete", "{result}");
    assert_eq!(result["repeated_update_committed"], false, "{result}");
}

#[test]
fn a_dropped_in_plugin_and_a_python_alias_run_through_aimm_backend_plugin() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(memory_plugin(), dir.path().join("libmemory_backend.so")).unwrap();
    let (result, _) = checks(&["plugin", "--plugin-dir", path(dir.path())]);
    assert_eq!(result["plugin_name"], "memory", "{result}");
    assert_eq!(
        result["models"],
        serde_json::json!([[1, "checks.Blob", "updated"]]),
        "{result}"
    );
    assert_eq!(result["subscription"], serde_json::json!([]), "{result}");
    assert_eq!(result["alias_plugin_name"], "sqlite", "{result}");
    let alias_library = result["alias_library"].as_str().unwrap();
    assert!(
        alias_library.ends_with("aimm_backend/plugins/libaimm_backend_sqlite.so"),
        "the alias must resolve to the wheel's own plugin: {alias_library}"
    );
}

/// Runs bad-input `case`; asserts the exception class, that the message
/// holds every one of `expected`, and that the process still works.
fn bad_input(case: &str, extra: &[&str], class: &str, expected: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["bad-input", case, "--workdir", path(dir.path())];
    args.extend_from_slice(extra);
    let (result, stderr) = checks(&args);
    assert_eq!(result["raised"], class, "{case}: {result}");
    assert_eq!(result["is_backend_error"], true, "{case}: {result}");
    let message = result["message"].as_str().unwrap();
    for part in expected {
        assert!(
            message.contains(part),
            "{case}: {part:?} not in {message:?}"
        );
    }
    assert_eq!(result["still_works"], true, "{case}: {result}");
    assert!(!stderr.contains("Traceback"), "{case}: {stderr}");
    stderr
}

#[test]
fn an_unknown_plugin_is_named_with_every_place_searched() {
    bad_input(
        "unknown-plugin",
        &[],
        "LoadError",
        &[
            "backend module `no_such_plugin` not found",
            "libno_such_plugin.so",
            "aimm_backend/plugins/libno_such_plugin.so",
        ],
    );
}

#[test]
fn a_plugin_built_against_another_api_version_is_refused() {
    let other = next_minor(API_VERSION);
    let library = build_plugin_against_api_version(&other);
    bad_input(
        "other-api",
        &["--library", path(&library)],
        "LoadError",
        &[
            &format!("built against aimm-backend-api {other}"),
            &format!("this host uses aimm-backend-api {API_VERSION}"),
        ],
    );
}

#[test]
fn an_invalid_section_names_the_json_path_and_the_rule() {
    bad_input(
        "invalid-config",
        &[],
        "ConfigError",
        &["backend.path: expected string, got 5"],
    );
    bad_input(
        "missing-plugin-key",
        &[],
        "ConfigError",
        &["backend.plugin: expected the plugin to load", "got nothing"],
    );
}

#[test]
fn serializer_failures_name_the_model_type() {
    bad_input(
        "serializer-raises",
        &[],
        "SerializationError",
        &[
            "'checks.Raises'",
            "ValueError: this serializer always fails",
        ],
    );
    bad_input(
        "serializer-returns-str",
        &[],
        "SerializationError",
        &["'checks.ReturnsStr' returned str, expected bytes"],
    );
}

#[test]
fn a_serializer_failing_on_an_update_stores_nothing() {
    bad_input(
        "serializer-raises-on-update",
        &[],
        "SerializationError",
        &[
            "'checks.Raises'",
            "ValueError: this serializer always fails",
        ],
    );
}

#[test]
fn a_plugin_panic_is_an_exception_reported_once() {
    let stderr = bad_input(
        "plugin-panics",
        &["--library", path(&panicky_plugin())],
        "PluginPanicError",
        &["panic in `create_model`", "panicky backend: create_model"],
    );
    // The panic hook's record of a panic the caller gets as an exception is
    // at debug level: Python's last-resort handler (warnings and up) does
    // not print it a second time.
    assert!(!stderr.contains("plugin panicked"), "{stderr}");
}

#[test]
fn the_event_server_gone_fails_calls_clearly_instead_of_hanging() {
    let server = HatServer::start();
    let port = server.port.to_string();
    let script = workspace_root().join("scripts/hat-event-server.sh");
    bad_input(
        "event-server-gone",
        &[
            "--port",
            &port,
            "--server-dir",
            path(server.dir()),
            "--stop-script",
            path(&script),
        ],
        "UnavailableError",
        &[
            "the AIMM server's event client",
            "Hat event server is closed",
        ],
    );
}

#[test]
fn created_twice_forked_and_closed_with_writes_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("life.db");
    let (result, stderr) = checks(&["lifecycle", "--db", path(&db)]);
    // Two backends on one file in one process see each other's models.
    assert_eq!(
        result["seen_by_first"],
        serde_json::json!([1, 2]),
        "{result}"
    );
    // A forked child (as the engine's workers are) runs and exits cleanly
    // while the parent writes, and the parent goes on writing.
    assert_eq!(result["child_exit"], 0, "{result}");
    assert_eq!(result["child_said"], 499500, "{result}");
    assert!(result["after_fork_id"].as_i64().unwrap() > 2, "{result}");
    // A model the caller dropped is not kept alive by the thread that
    // wrote it.
    assert_eq!(result["freed_after_calls"], true, "{result}");
    // Closing waits for the 16 writes in flight; each is stored. A write
    // started after closing fails clearly.
    assert_eq!(result["in_flight_acknowledged"], 16, "{result}");
    assert_eq!(result["in_flight_failed"], Value::Array(vec![]), "{result}");
    assert_eq!(
        result["acknowledged_missing"],
        Value::Array(vec![]),
        "{result}"
    );
    assert_eq!(result["after_close"], "the backend is closed", "{result}");
    assert_eq!(result["wal_left_after_close"], false, "{result}");
    assert!(!stderr.contains("Task was destroyed"), "{stderr}");
    assert!(!stderr.contains("Traceback"), "{stderr}");
}

#[test]
fn event_backend_through_the_servers_kind_of_client_shares_a_prefix_with_stock() {
    let stderr = event_beside_stock("persisted");
    // Weaker durability than configured is said once.
    assert_eq!(
        stderr
            .matches("acknowledge: persisted cannot be honoured")
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn event_backend_acknowledging_when_sent_still_hears_its_own_writes_once() {
    let stderr = event_beside_stock("sent");
    assert!(!stderr.contains("cannot be honoured"), "{stderr}");
}

/// The `event` scenario with `acknowledge`; returns its stderr.
fn event_beside_stock(acknowledge: &str) -> String {
    let server = HatServer::start();
    let (result, stderr) = checks(&[
        "event",
        "--port",
        &server.port.to_string(),
        "--acknowledge",
        acknowledge,
    ]);
    let ours: Vec<i64> = serde_json::from_value(result["ours_ids"].clone()).unwrap();
    let stock: Vec<i64> = serde_json::from_value(result["stock_ids"].clone()).unwrap();
    assert!(
        ours.iter().all(|id| !stock.contains(id)),
        "ids collide: {result}"
    );
    // A block of ids is handed out from its top: distinct, not ascending.
    assert!(
        ours[0] != ours[1] && ours[1] != ours[2] && ours[0] != ours[2],
        "{result}"
    );
    let expected = serde_json::json!({
        ours[0].to_string(): "ours 1b",
        ours[1].to_string(): "ours 2",
        ours[2].to_string(): "ours 3",
        stock[0].to_string(): "stock 1",
        stock[1].to_string(): "stock 2",
    });
    assert_eq!(result["final"], expected, "{result}");
    // Each side reads the other's models.
    assert_eq!(
        result["seen_by_stock"][ours[0].to_string()],
        "ours 1b",
        "{result}"
    );
    assert_eq!(
        result["seen_by_ours"][stock[1].to_string()],
        "stock 2",
        "{result}"
    );
    // Callbacks: every own write once, the other host's through
    // process_events, all on the loop thread.
    let heard = result["heard"].as_array().unwrap();
    // "ours 1b" is written three times: the second is skipped (unless
    // nothing confirms writes), the third follows the other host's.
    let ours_1b = if acknowledge == "sent" { 3 } else { 2 };
    let expect_heard = [
        (ours[0], "ours 1", 1),
        (ours[0], "ours 1b", ours_1b),
        (ours[0], "stock over", 1),
        (ours[1], "ours 2", 1),
        (stock[1], "stock 2", 1),
    ];
    for (id, text, expected) in expect_heard {
        let times = heard.iter().filter(|h| h[0] == id && h[1] == text).count();
        assert_eq!(
            times, expected,
            "{id} {text:?} heard {times} times: {result}"
        );
    }
    assert!(heard.iter().all(|h| h[2] == true), "{result}");
    // Writes that wait are acknowledged by their own notifications once
    // those reach process_events, without the server echoing the model
    // (the first may come before any has); sent ones never ask.
    let answered = result["model_writes_answered"].as_i64().unwrap();
    let unanswered = result["model_writes_unanswered"].as_i64().unwrap();
    if acknowledge == "sent" {
        assert_eq!((answered, unanswered), (0, 5), "{result}");
    } else {
        assert_eq!(answered + unanswered, 4, "{result}");
        assert!(unanswered >= 3, "{result}");
        // A host whose notifications go nowhere waits for the answer.
        assert_eq!(result["again_model_writes_answered"], 1, "{result}");
        assert_eq!(result["again_model_writes_unanswered"], 0, "{result}");
    }
    stderr
}

#[test]
fn sent_writes_through_the_servers_client_run_on_the_loop_unless_they_need_an_answer() {
    let server = HatServer::start();
    let (result, _) = checks(&["event-inline", "--port", &server.port.to_string()]);
    // Writes that need no answer do not suspend: the loop takes no turn
    // during them, as during stock's encoding of its model.
    assert_eq!(result["later_turns"], json!([0, 0, 0, 0]), "{result}");
    assert_eq!(result["update_turns"], 0, "{result}");
    assert_eq!(result["seen_update_turns"], json!([0, 0]), "{result}");
    // The first create claims ids and an update of a model the backend
    // never saw asks the server about it: both waited, off the loop.
    assert!(result["first_turns"].as_i64().unwrap() > 0, "{result}");
    assert!(
        result["unseen_update_turns"].as_i64().unwrap() > 0,
        "{result}"
    );
    let ids = result["ids"].as_array().unwrap();
    let distinct: std::collections::HashSet<_> = ids.iter().map(Value::to_string).collect();
    assert_eq!((ids.len(), distinct.len()), (8, 8), "{result}");
    // Every model is stored, each with its last write: the other backend's
    // inline updates after its update that ran on a thread.
    let final_models = result["final"].as_object().unwrap();
    let expected = ["other 3", "m2", "m3", "m4", "m5", "t0", "t1", "t2"];
    for (id, text) in ids.iter().zip(expected) {
        assert_eq!(final_models[&id.to_string()], text, "{result}");
    }
    assert_eq!(final_models.len(), 8, "{result}");
}

#[test]
fn json_payloads_from_the_server_s_client_reach_the_plugin_as_equal_json() {
    let (result, _) = checks(&["json-text"]);
    let cases = result.as_object().unwrap();
    assert_eq!(cases.len(), 15, "{result}");
    for (name, case) in cases {
        assert_eq!(case["parses_back"], true, "{name}: {result}");
    }
    // Written here, compactly; what the writer does not take exactly as
    // json.dumps would goes to json.dumps.
    let written_here = [
        "model",
        "nested",
        "escapes",
        "unicode",
        "long_mixed",
        "straddling",
        "after_blocks",
        "big_int",
        "tuple",
    ];
    for name in written_here {
        assert_eq!(cases[name]["compact"], true, "{name}: {result}");
    }
    for name in ["int_keys", "nan", "subclass", "surrogate"] {
        assert_eq!(cases[name]["as_json_dumps"], true, "{name}: {result}");
    }
}

#[test]
fn a_write_whose_notification_never_arrives_fails_after_the_bridge_timeout() {
    let server = HatServer::start();
    let (result, _) = checks(&["event-unheard", "--port", &server.port.to_string()]);
    let unheard = result["unheard"].as_str().unwrap();
    assert!(
        unheard.contains("did not report the registered events within 1 s"),
        "{result}"
    );
    let seconds = result["unheard_seconds"].as_f64().unwrap();
    assert!((0.9..20.0).contains(&seconds), "{result}");
    // Heard again, the next write is acknowledged, and it is what is stored.
    assert_eq!(result["stored"], "heard 3", "{result}");
    assert!(
        result["model_writes_unanswered"].as_i64().unwrap() >= 2,
        "{result}"
    );
}

#[test]
fn an_event_backend_with_its_own_connection_needs_nothing_of_the_servers_client() {
    let server = HatServer::start();
    let (result, _) = checks(&["event-own", "--port", &server.port.to_string()]);
    // The server's client subscribes to nothing of ours, is not bridged,
    // and carries no registration and no notification.
    assert_eq!(result["subscription"], json!([]), "{result}");
    assert_eq!(result["bridge"], false, "{result}");
    assert_eq!(result["server_client_registrations"], 0, "{result}");
    assert_eq!(result["server_client_notified"], 0, "{result}");
    // What ours wrote is on the server for the other host, and the other
    // host's write reached ours' listeners through ours' own connection.
    let ids = result["ids"].as_array().unwrap();
    let (first, second) = (ids[0].to_string(), ids[1].to_string());
    assert_eq!(result["seen_by_stock"][&first], "own 1b", "{result}");
    assert_eq!(result["seen_by_stock"][&second], "own 2", "{result}");
    let stock_id = result["stock_id"].as_i64().unwrap();
    assert_eq!(
        result["seen_by_ours"][stock_id.to_string()],
        "stock 1",
        "{result}"
    );
    assert!(
        result["heard"]
            .as_array()
            .unwrap()
            .contains(&json!([stock_id, "stock 1"])),
        "{result}"
    );
    // Persisted is honoured on its own connection: nothing to warn of.
    assert_eq!(result["warnings"], json!([]), "{result}");
    // The connection is the backend's: open while it is, closed with it.
    assert_eq!(result["eventer_status_open"], "CONNECTED", "{result}");
    assert_eq!(result["eventer_status_closed"], "DISCONNECTED", "{result}");
}

#[test]
fn the_bridge_waits_longer_once_large_models_go_through_it() {
    let (result, _) = checks(&["bridge-deadline"]);
    // A call 1.5 s slow fails the 1 s base deadline, in about that time...
    let small = &result["small"];
    assert_eq!(small["deadline"], 1.0, "{result}");
    assert!(
        small["outcome"]
            .as_str()
            .unwrap()
            .contains("no answer from the Hat event server within 1.0 s"),
        "{result}"
    );
    assert!(small["seconds"].as_f64().unwrap() < 1.4, "{result}");
    // ...but not once 2 MiB have been registered: 1 s + 2 x 1 s.
    let large = &result["large"];
    assert_eq!(large["deadline"], 3.0, "{result}");
    assert_eq!(large["outcome"], "answered", "{result}");
}

#[test]
fn a_sent_registration_is_handed_over_in_order_and_a_closed_client_refuses_it() {
    let (result, _) = checks(&["bridge-hand-over"]);
    assert_eq!(result["answer"], Value::Null, "{result}");
    // The client takes a second over it; the plugin thread does not wait.
    let seconds = result["handed_over_seconds"].as_f64().unwrap();
    assert!(seconds < 0.5, "waited {seconds} s for the send: {result}");
    // Sent before the query asked for after it, both times.
    assert_eq!(
        result["calls"],
        json!([
            ["register", "1"],
            ["query"],
            ["register", "fails"],
            ["query"]
        ]),
        "{result}"
    );
    let warnings = result["warnings"].as_array().unwrap();
    assert!(
        warnings.len() == 1
            && warnings[0]
                .as_str()
                .unwrap()
                .contains("registering events without response failed: the peer went away"),
        "{result}"
    );
    let closed = result["closed"].as_str().unwrap();
    assert!(
        closed.contains("connection to the Hat event server is closed"),
        "{result}"
    );
}

#[test]
fn a_large_registration_is_preceded_by_a_query_that_restarts_the_idle_clock() {
    let (result, _) = checks(&["bridge-fresh-window"]);
    let limit = result["limit"].as_i64().unwrap();
    assert_eq!(limit, 16 << 20, "{result}");
    // Just under 16 MiB: the registration alone; 16 MiB: the empty query
    // first, answered or not; small ones never.
    assert_eq!(
        result["calls"],
        json!([
            ["register", limit - 1],
            ["query", []],
            ["register", limit],
            ["register", 100],
            ["query", []],
            ["register", limit]
        ]),
        "{result}"
    );
}

#[test]
fn the_deadlock_traps_are_designed_out() {
    let server = HatServer::start();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("traps.db");
    let (result, _) = checks(&[
        "traps",
        "--port",
        &server.port.to_string(),
        "--db",
        path(&db),
    ]);
    // A plugin call on the loop thread is refused, not deadlocked.
    let refused = result["loop_thread_call"].as_str().unwrap();
    assert!(
        refused.starts_with("UnavailableError") && refused.contains("event loop's thread"),
        "{result}"
    );
    // The plugin's thread reaches the loop while a native call is running.
    assert!(
        result["bridged_create_id"].as_i64().unwrap() > 0,
        "{result}"
    );
    // The loop ran Python while a native call was in progress (the call
    // released the GIL); a call holding the GIL would let no tick in.
    assert!(
        result["ticks_inside_native_call"].as_i64().unwrap() >= 3,
        "the loop stalled during a native call: {result}"
    );
    // Change callbacks arrive on the loop thread.
    assert_eq!(
        result["callback"]["id"], result["callback"]["expected"],
        "{result}"
    );
    assert_eq!(result["callback"]["on_loop_thread"], true, "{result}");
    // A plugin may use the event client while it processes notified
    // events: the server's receive loop does not wait for it.
    let queried = result["event_client_in_process_events"].as_str().unwrap();
    assert!(queried.starts_with("queried "), "{result}");
}

#[test]
fn plugin_log_records_go_to_python_logging_under_aimm_backend() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.db");
    let (result, _) = checks(&["logging", "--db", path(&db)]);
    let records = result["records"].as_array().unwrap();
    let opened = records
        .iter()
        .find(|r| {
            r[2].as_str()
                .unwrap()
                .starts_with("opened SQLite model store")
        })
        .unwrap_or_else(|| panic!("no record of the plugin: {result}"));
    assert_eq!(opened[0], "aimm_backend.sqlite", "{result}");
    assert_eq!(opened[1], "DEBUG", "{result}");
    assert!(
        opened[3]
            .as_str()
            .unwrap()
            .starts_with("aimm_backend_sqlite"),
        "{result}"
    );
    let unread: Vec<&Value> = records
        .iter()
        .filter(|r| r[2].as_str().unwrap().contains("backend.paht is not read"))
        .collect();
    assert_eq!(unread.len(), 1, "{result}");
    assert_eq!(unread[0][0], "aimm_backend", "{result}");
    assert_eq!(unread[0][1], "WARNING", "{result}");
}
