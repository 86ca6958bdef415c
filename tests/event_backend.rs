//! The event backend plugin against a real `hat-event-server`: the
//! conformance suite, several hosts creating at once, restarts.

use aimm_backend_conformance::{run, PluginTarget};
use aimm_backend_tests::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn event_conf(dir: &Path, server: &HatServer, prefix: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "event.yaml",
        &format!(
            "name: test-host\nhat:\n  eventer_server: {{host: 127.0.0.1, port: {}}}\n\
             backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, {prefix}]\n",
            server.port
        ),
    )
}

#[test]
fn event_backend_passes_conformance_in_process() {
    let server = HatServer::start();
    let (_runtime, client) = connected_client(&server, "conformance", Duration::from_secs(5));
    let target = PluginTarget::scratch(prepare_plugin(
        &event_plugin(),
        json!({"model_prefix": ["aimm", "model"]}),
        Some(client),
    ))
    .unwrap();
    let report = run(&target);
    assert!(report.all_passed(), "{report}");
}

#[test]
fn event_backend_passes_conformance_through_the_cli() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "cli");
    let output = run_expecting(
        cli(work.path()).arg("--conf").arg(&conf).arg("conformance"),
        0,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    let check = run_expecting(cli(work.path()).arg("--conf").arg(&conf).arg("check"), 0);
    assert!(String::from_utf8_lossy(&check.stdout).contains("plugin:  event 0.1.0"));
}

fn put_files(work: &Path, conf: &Path, tag: &str, count: usize) -> std::process::Child {
    let dir = work.join(format!("files-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = (0..count)
        .map(|i| {
            let path = dir.join(format!("{i}.bin"));
            std::fs::write(&path, test_bytes(i as u64, 100 + i)).unwrap();
            path
        })
        .collect();
    cli(work)
        .arg("--conf")
        .arg(conf)
        .args(["put", &format!("host.{tag}")])
        .args(&files)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_hosts_creating_at_once_and_restarted_hosts_never_share_an_id() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "race");
    let hosts: Vec<_> = ["a", "b"]
        .iter()
        .map(|tag| put_files(work.path(), &conf, tag, 100))
        .collect();
    let mut ids = BTreeSet::new();
    for host in hosts {
        let output = wait_within(host, COMMAND_DEADLINE, "aimm-backend put");
        assert!(output.status.success(), "{}", describe(&output));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            assert!(
                ids.insert(line.trim().parse::<i64>().unwrap()),
                "id {line} handed out twice"
            );
        }
    }
    assert_eq!(ids.len(), 200);
    // A restarted host (a new process) creates without overwriting anything.
    for round in 0..2 {
        let output = wait_within(
            put_files(work.path(), &conf, &format!("restart{round}"), 3),
            COMMAND_DEADLINE,
            "aimm-backend put",
        );
        assert!(output.status.success(), "{}", describe(&output));
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            assert!(
                ids.insert(line.trim().parse::<i64>().unwrap()),
                "id {line} reused after a restart"
            );
        }
    }
    let listed = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .args(["list", "--json"]),
        0,
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 206);
}

#[test]
fn an_unreachable_event_server_is_a_clear_error_in_bounded_time() {
    let work = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener); // nothing listens there now
    let conf = write_file(
        work.path(),
        "event.yaml",
        &format!(
            "hat:\n  eventer_server: {{host: 127.0.0.1, port: {port}, timeout: 1}}\n\
             backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, down]\n"
        ),
    );
    let started = Instant::now();
    let output = run_expecting(cli(work.path()).arg("--conf").arg(&conf).arg("list"), 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Hat event server at 127.0.0.1:{port} is unavailable"
        )),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `hat.monitor_component` without `event_server_group` joins a monitor
/// but names no event server (as in the Python AIMM server), so the event
/// backend, which needs one, is refused naming what is missing.
#[test]
fn a_monitor_component_without_an_event_server_group_leaves_the_event_backend_without_a_server() {
    let work = tempfile::tempdir().unwrap();
    let conf = write_file(
        work.path(),
        "event.yaml",
        "hat:\n  monitor_component: {host: 127.0.0.1, port: 23010, group: aimm}\n\
         backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm]\n",
    );
    let output = run_expecting(cli(work.path()).arg("--conf").arg(&conf).arg("list"), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("needs a Hat event server") && stderr.contains("event_server_group"),
        "{stderr}"
    );
}

fn python_event_tool(server: &HatServer, args: &[&str]) -> Vec<serde_json::Value> {
    let mut command = std::process::Command::new(python());
    command
        .arg(workspace_root().join("tests/python/aimm_event_tool.py"))
        .arg(args[0])
        .arg("127.0.0.1")
        .arg(server.port.to_string())
        .args(&args[1..]);
    let output = output_within(&mut command, COMMAND_DEADLINE, "aimm_event_tool.py");
    assert!(output.status.success(), "{args:?}: {}", describe(&output));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn python_and_ours_read_each_other_on_one_server_and_prefix() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let prefix = r#"["aimm", "interop"]"#;
    let py_files: Vec<_> = [(1u64, 1000usize), (2, 0), (3, 200_000)]
        .iter()
        .map(|&(seed, len)| {
            let path = work.path().join(format!("py{seed}.bin"));
            std::fs::write(&path, test_bytes(seed, len)).unwrap();
            path
        })
        .collect();
    let mut args = vec!["put", prefix, "py.модель"];
    args.extend(py_files.iter().map(|p| p.to_str().unwrap()));
    let created = python_event_tool(&server, &args);
    assert_eq!(created.len(), 3);

    // Ours reads Python's models byte-exact.
    let conf = event_conf(work.path(), &server, "interop");
    for (entry, file) in created.iter().zip(&py_files) {
        let id = entry["instance_id"].as_i64().unwrap().to_string();
        let out = run_expecting(
            cli(work.path()).arg("--conf").arg(&conf).args(["get", &id]),
            0,
        );
        assert!(
            out.stdout == std::fs::read(file).unwrap(),
            "model {id} differs read by ours"
        );
    }

    // Python reads ours byte-exact.
    let ours = work.path().join("ours.bin");
    std::fs::write(&ours, test_bytes(9, 70_000)).unwrap();
    let our_id = put_one(work.path(), &conf, "rust.type", &ours);
    let out_dir = work.path().join("py-out");
    let dumped = python_event_tool(&server, &["dump", prefix, out_dir.to_str().unwrap()]);
    assert_eq!(dumped.len(), 4, "{dumped:?}");
    let entry = dumped
        .iter()
        .find(|e| e["instance_id"] == our_id)
        .expect("Python sees ours");
    assert_eq!(entry["model_type"], "rust.type");
    assert!(std::fs::read(out_dir.join(format!("{our_id}.bin"))).unwrap() == test_bytes(9, 70_000));
    for (entry, file) in created.iter().zip(&py_files) {
        let id = entry["instance_id"].as_i64().unwrap();
        assert!(
            std::fs::read(out_dir.join(format!("{id}.bin"))).unwrap()
                == std::fs::read(file).unwrap()
        );
    }
}

/// Registers `events` straight through the Rust Eventer client.
#[test]
fn events_that_are_not_models_are_skipped_with_a_warning() {
    use hat_eventer_client::eventer_msg::{EventPayload, RegisterEvent};
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "junk");
    let file = write_file(work.path(), "good.bin", "good");
    put_one(work.path(), &conf, "good", &file);
    let bad = |last: &str, payload: Option<EventPayload>| RegisterEvent {
        event_type: vec!["aimm".into(), "junk".into(), last.into()],
        source_timestamp: None,
        payload,
    };
    let json = |text: &str| Some(EventPayload::Json(text.into()));
    register_raw(
        &server,
        vec![
            bad("1", json(r#"{"type": "t", "instance": "not base64!"}"#)),
            bad("two", json(r#"{"type": "t", "instance": "AAEC"}"#)),
            bad("3", json(r#"{"instance": "AAEC"}"#)),
            bad(
                "4",
                Some(EventPayload::Binary {
                    payload_type: "x".into(),
                    data: vec![1],
                }),
            ),
            bad("5", None),
            // A JSON payload that is not JSON cannot be registered at all:
            // hat-event-server 0.9.44 closes the connection of the sender.
            bad("6", json(r#"["a", "list"]"#)),
        ],
    );
    let output = run_expecting(cli(work.path()).arg("--conf").arg(&conf).arg("list"), 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("\tgood\t4"), "{stdout}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for expected in [
        r#"["aimm", "junk", "1"]"#,
        r#"id segment "two" is not an integer"#,
        r#"["aimm", "junk", "3"]"#,
        "payload is binary",
        "has no payload",
        r#"["aimm", "junk", "6"]"#,
    ] {
        assert!(
            stderr.contains(expected),
            "no warning with {expected}:\n{stderr}"
        );
    }
}

/// A Python host on the same prefix writes ids its own way (its highest
/// stored id plus one), so a model may already sit at the id the server
/// hands our next claim. That claim must be skipped, never used: here Python
/// payloads are stored at every id our next claims can get (the claim's
/// register request is one of the next few sessions), then ours creates.
#[test]
fn a_claimed_id_that_a_python_host_already_stored_is_skipped() {
    use hat_eventer_client::eventer_msg::{EventPayload, RegisterEvent};
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "shared");
    let file = write_file(work.path(), "ours.bin", "ours");
    let first = put_one(work.path(), &conf, "ours", &file);
    const SESSION: i64 = 1 << 16;
    // Fewer than the backend claims in a row before it gives up (16).
    let taken: Vec<i64> = (1..=8).map(|k| first + k * SESSION).collect();
    register_raw(
        &server,
        taken
            .iter()
            .map(|id| RegisterEvent {
                event_type: vec!["aimm".into(), "shared".into(), id.to_string()],
                source_timestamp: None,
                // What the Python backend writes: its type and base64 bytes.
                payload: Some(EventPayload::Json(
                    r#"{"type": "python.model", "instance": "AQID"}"#.into(),
                )),
            })
            .collect(),
    );
    let output = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .args(["put", "ours"])
            .arg(&file),
        0,
    );
    let id: i64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(
        !taken.contains(&id),
        "create used id {id}, which a Python host's model held"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("is taken already; claiming again"),
        "the claim never hit a taken id, so this test proved nothing:\n{stderr}"
    );
    let listed = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .args(["list", "--json"]),
        0,
    );
    let models: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    for taken_id in &taken {
        let model = models
            .iter()
            .find(|m| m["instance_id"] == *taken_id)
            .unwrap_or_else(|| panic!("the Python host's model {taken_id} is gone"));
        assert_eq!(
            model["model_type"], "python.model",
            "model {taken_id} was overwritten"
        );
        assert_eq!(model["size"], 3);
    }
    let ours = models
        .iter()
        .find(|m| m["instance_id"] == id)
        .expect("ours is listed");
    assert_eq!(ours["model_type"], "ours");
}

#[test]
fn watch_shows_models_created_by_other_hosts() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "watched");
    let mut watcher = Watcher::start(work.path(), &conf);
    std::thread::sleep(Duration::from_millis(1500));
    let file = write_file(work.path(), "m.bin", "from another host");
    let id = put_one(work.path(), &conf, "other.host", &file);
    assert_eq!(
        watcher.next_change(),
        json!({"instance_id": id, "model_type": "other.host", "size": 17})
    );
    watcher.stop();
}

#[test]
// SIGKILL, not a stop: hat-event-server confirms a registration before it
// writes it, so this is what proves creates wait until the model is on disk.
fn a_server_killed_mid_stream_fails_calls_fast_and_loses_no_acknowledged_model() {
    use aimm_backend_api::{ErrorKind, Model};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let server = HatServer::start();
    let (_runtime, client) = connected_client(&server, "outage", Duration::from_secs(2));
    let backend = open_plugin(
        &event_plugin(),
        json!({"model_prefix": ["aimm", "outage"]}),
        Some(client.clone()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Model>>> = Arc::default();
    let failures: Arc<Mutex<Vec<(ErrorKind, String, Duration)>>> = Arc::default();
    // Several writers, so that the kill finds creates at every stage.
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let (backend, stop, acked, failures) = (
                backend.clone(),
                stop.clone(),
                acked.clone(),
                failures.clone(),
            );
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    i += 1;
                    let bytes = test_bytes(writer << 32 | i, 2000);
                    let started = Instant::now();
                    match backend.create_model("outage.model".into(), bytes.into()) {
                        Ok(model) => acked.lock().unwrap().push(model),
                        Err(err) => {
                            failures.lock().unwrap().push((
                                err.kind,
                                err.to_string(),
                                started.elapsed(),
                            ));
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    server.kill();
    std::thread::sleep(Duration::from_secs(2));
    let before_restart = acked.lock().unwrap().len();
    server.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < before_restart + 10 {
        assert!(
            Instant::now() < deadline,
            "creates did not resume after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().unwrap();
    }

    let failures = failures.lock().unwrap();
    assert!(!failures.is_empty(), "no call saw the outage");
    for (kind, message, took) in failures.iter() {
        assert!(
            *kind == ErrorKind::Unavailable && message.contains(&server.address()),
            "unclear outage error: {message}"
        );
        assert!(
            *took < Duration::from_secs(3),
            "a call took {took:?} in the outage"
        );
    }
    let acked = acked.lock().unwrap();
    let stored = backend.get_models().unwrap();
    for model in acked.iter() {
        let found = stored.iter().find(|m| m.instance_id == model.instance_id);
        assert!(
            found == Some(model),
            "acknowledged model {} is missing or differs",
            model.instance_id
        );
    }
    eprintln!(
        "{} creates acknowledged, {} failed fast during the outage",
        acked.len(),
        failures.len()
    );
}

#[test]
fn copy_moves_models_between_sqlite_and_the_event_server_keeping_ids() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let source = sqlite_conf(work.path(), "src.yaml", &work.path().join("src.db"), "");
    let events = event_conf(work.path(), &server, "copied");
    let back = sqlite_conf(work.path(), "back.yaml", &work.path().join("back.db"), "");
    let file = work.path().join("m.bin");
    for seed in 0..4u64 {
        std::fs::write(&file, test_bytes(seed, 5000 * seed as usize)).unwrap();
        put_one(work.path(), &source, &format!("type{seed}"), &file);
    }
    for (from, to) in [(&source, &events), (&events, &back)] {
        let output = run_expecting(
            cli(work.path())
                .arg("--conf")
                .arg(from)
                .args(["copy", "--to", to.to_str().unwrap()]),
            0,
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("copied 4 models, 0 already present")
        );
        // Idempotent: a second run copies nothing and changes nothing.
        let output = run_expecting(
            cli(work.path())
                .arg("--conf")
                .arg(from)
                .args(["copy", "--to", to.to_str().unwrap()]),
            0,
        );
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("copied 0 models, 4 already present")
        );
    }
    assert_eq!(
        read_models_table(&work.path().join("src.db")),
        read_models_table(&work.path().join("back.db"))
    );
}

#[test]
fn acknowledge_registered_and_sent_are_accepted_and_an_unknown_value_is_refused() {
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf_with = |name: &str, acknowledge: &str| {
        write_file(
            work.path(),
            name,
            &format!(
                "hat:\n  eventer_server: {{host: 127.0.0.1, port: {}}}\n\
                 backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, ack]\n  \
                 acknowledge: {acknowledge}\n",
                server.port
            ),
        )
    };
    let file = write_file(work.path(), "m.bin", "model bytes");
    for acknowledge in ["registered", "sent"] {
        let conf = conf_with(&format!("{acknowledge}.yaml"), acknowledge);
        let id = put_one(work.path(), &conf, "ack.model", &file);
        let get = run_expecting(
            cli(work.path())
                .arg("--conf")
                .arg(&conf)
                .args(["get", &id.to_string()]),
            0,
        );
        assert_eq!(get.stdout, b"model bytes", "acknowledge: {acknowledge}");
    }

    let unknown = conf_with("unknown.yaml", "sometimes");
    let output = run_expecting(cli(work.path()).arg("--conf").arg(&unknown).arg("check"), 2);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("backend.acknowledge") && stderr.contains("persisted"),
        "{stderr}"
    );
}

#[test]
fn own_writes_reach_listeners_once_although_the_server_notifies_them_back() {
    use aimm_backend_api::Model;
    use aimm_backend_hat_host::open_backend;
    use aimm_backend_loader::{SearchPath, ServerConfig};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let server = HatServer::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let yaml = format!(
        "hat:\n  eventer_server: {{host: 127.0.0.1, port: {}}}\n\
         backend:\n  module: aimm.server.backend.event\n  model_prefix: [aimm, once]\n",
        server.port
    );
    let config = ServerConfig::from_yaml(&yaml, "once.yaml").unwrap();
    let handle = open_backend(&config, &SearchPath::from_dirs(vec![release_dir()])).unwrap();
    let backend = handle.backend().clone();
    let heard: Arc<Mutex<BTreeMap<i64, usize>>> = Arc::default();
    let recorder = heard.clone();
    backend
        .register_model_change_cb(Arc::new(move |m: &Model| {
            *recorder.lock().unwrap().entry(m.instance_id).or_default() += 1;
        }))
        .unwrap();
    // Writes from several threads, so notifications arrive while writes wait.
    let ids: Vec<i64> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let backend = backend.clone();
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            backend
                                .create_model("once.model".into(), vec![i; 100].into())
                                .unwrap()
                                .instance_id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    // Give the server's notifications of these writes time to arrive.
    std::thread::sleep(Duration::from_secs(1));
    let heard = heard.lock().unwrap();
    for id in &ids {
        assert_eq!(heard.get(id), Some(&1), "model {id}: {heard:?}");
    }
    assert_eq!(heard.len(), ids.len(), "{heard:?}");
}

#[test]
fn a_cli_writer_and_the_server_both_killed_lose_no_acknowledged_model() {
    use std::process::Stdio;
    const COUNT: usize = 1000;
    const SIZE: usize = 16 * 1024;
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let conf = event_conf(work.path(), &server, "killed");
    let files: Vec<_> = (0..COUNT)
        .map(|i| {
            let path = work.path().join(format!("{i}.bin"));
            std::fs::write(&path, test_bytes(i as u64, SIZE)).unwrap();
            path
        })
        .collect();
    let mut writer = cli(work.path())
        .arg("--conf")
        .arg(&conf)
        .args(["put", "killed.model"])
        .args(&files)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = ChildLines::new(writer.stdout.take().unwrap(), "aimm-backend put");
    let mut acknowledged: Vec<i64> = Vec::new();
    while acknowledged.len() < 10 {
        let line = lines
            .next_within(COMMAND_DEADLINE)
            .expect("the writer is still running");
        acknowledged.push(line.trim().parse().unwrap());
    }
    // SIGKILL the writer mid-stream, then the server: neither gets to
    // flush anything. Ids already in the pipe were acknowledged too.
    writer.kill().unwrap();
    server.kill();
    acknowledged.extend(
        lines
            .rest_within(COMMAND_DEADLINE)
            .iter()
            .filter_map(|l| l.trim().parse::<i64>().ok()),
    );
    wait_within(writer, COMMAND_DEADLINE, "the killed writer");
    assert!(
        acknowledged.len() < COUNT,
        "the writer finished before the kill"
    );

    server.start_again();
    let (_runtime, client) = connected_client(&server, "after-kill", Duration::from_secs(5));
    let backend = open_plugin(
        &event_plugin(),
        json!({"model_prefix": ["aimm", "killed"]}),
        Some(client),
    );
    let stored = backend.get_models().unwrap();
    // `put` stores the files in order, so the i-th printed id holds file i.
    for (i, id) in acknowledged.iter().enumerate() {
        let model = stored
            .iter()
            .find(|m| m.instance_id == *id)
            .unwrap_or_else(|| panic!("acknowledged model {id} (file {i}) is missing"));
        assert!(
            model.instance.as_slice() == test_bytes(i as u64, SIZE).as_slice(),
            "model {id} (file {i}) has other bytes"
        );
    }
    eprintln!(
        "{} creates acknowledged before the kills, {} models stored after",
        acknowledged.len(),
        stored.len()
    );
}

/// The model types of the model events under `prefix` that the server
/// notifies, in order, from a connection of its own.
struct Observer {
    runtime: tokio::runtime::Runtime,
    events: tokio::sync::mpsc::UnboundedReceiver<Vec<hat_eventer_client::eventer_msg::Event>>,
    _client: hat_eventer_client::client::Client,
}

impl Observer {
    fn start(server: &HatServer, prefix: &[&str]) -> Observer {
        use hat_eventer_client::client::{connect, ClientConfig};
        use hat_eventer_client::eventer_msg::MsgInitReq;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut subscription: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        subscription.push("*".into());
        let init = MsgInitReq {
            client_name: "observer".into(),
            client_token: None,
            subscriptions: vec![subscription],
            server_id: None,
            persisted: false,
        };
        let (client, events) = runtime
            .block_on(connect(&server.address(), init, ClientConfig::default()))
            .unwrap();
        Observer {
            runtime,
            events,
            _client: client,
        }
    }

    /// The `type` of the next `count` model events notified, failing the
    /// test if they do not arrive within 30 s.
    fn next_types(&mut self, count: usize) -> Vec<String> {
        use hat_eventer_client::eventer_msg::EventPayload;
        let mut types = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while types.len() < count {
            let batch = self
                .runtime
                .block_on(tokio::time::timeout_at(deadline, self.events.recv()))
                .unwrap_or_else(|_| panic!("notified so far: {types:?}; expected {count}"))
                .expect("the observer's connection closed");
            for event in batch {
                let Some(EventPayload::Json(text)) = event.payload else {
                    continue;
                };
                let payload: serde_json::Value = serde_json::from_str(&text).unwrap();
                types.push(payload["type"].as_str().unwrap().to_string());
            }
        }
        types
    }
}

#[test]
fn updates_that_repeat_the_newest_event_register_nothing_in_any_host() {
    use aimm_backend_api::Model;
    use aimm_backend_hat_host::open_backend;
    use aimm_backend_loader::{SearchPath, ServerConfig};
    use std::sync::{Arc, Mutex};
    let server = HatServer::start();
    let work = tempfile::tempdir().unwrap();
    let mut observer = Observer::start(&server, &["aimm", "elide"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _context = runtime.enter();
    let conf = event_conf(work.path(), &server, "elide");
    let yaml = std::fs::read_to_string(&conf).unwrap();
    let config = ServerConfig::from_yaml(&yaml, "elide.yaml").unwrap();
    let host = || open_backend(&config, &SearchPath::from_dirs(vec![release_dir()])).unwrap();
    let (host_a, host_b) = (host(), host());
    let a = host_a.backend().clone();
    let heard: Arc<Mutex<Vec<String>>> = Arc::default();
    let recorder = heard.clone();
    a.register_model_change_cb(Arc::new(move |m: &Model| {
        recorder.lock().unwrap().push(m.model_type.to_string())
    }))
    .unwrap();
    let model = |v: u64| (format!("v{v}"), test_bytes(v, 3000 + v as usize));
    let (t1, b1) = model(1);
    let id = a
        .create_model(t1.as_str().into(), b1.clone().into())
        .unwrap()
        .instance_id;
    let update = |backend: &Arc<dyn aimm_backend_api::Backend>, v: u64| {
        let (model_type, bytes) = model(v);
        backend
            .update_model(Model::new(id, model_type, bytes))
            .unwrap();
    };
    for _ in 0..3 {
        update(&a, 1);
    }
    update(&a, 2);
    assert_eq!(
        observer.next_types(2),
        ["v1", "v2"],
        "the repeats of v1 registered"
    );
    // Another host writes; once this one has heard of it, the same update
    // as before is registered again.
    update(host_b.backend(), 3);
    assert_eq!(observer.next_types(1), ["v3"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !heard.lock().unwrap().contains(&"v3".to_string()) {
        assert!(Instant::now() < deadline, "host A never heard of v3");
        std::thread::sleep(Duration::from_millis(10));
    }
    update(&a, 2);
    assert_eq!(observer.next_types(1), ["v2"], "host B's write hid it");
    // A host that never saw the model compares with what the server holds.
    let host_c = host();
    update(host_c.backend(), 2);
    update(host_c.backend(), 4);
    assert_eq!(observer.next_types(1), ["v4"], "host C repeated v2");
    // So does the CLI, a host per command.
    let file = work.path().join("model.bin");
    for v in [4, 5] {
        let (model_type, bytes) = model(v);
        std::fs::write(&file, bytes).unwrap();
        let id = id.to_string();
        let args = ["update", &id, file.to_str().unwrap(), "--type", &model_type];
        run_expecting(cli(work.path()).arg("--conf").arg(&conf).args(args), 0);
    }
    assert_eq!(observer.next_types(1), ["v5"], "the CLI repeated v4");
    let stored = a.get_model(id).unwrap();
    assert_eq!(
        (stored.model_type.to_string(), stored.instance.to_vec()),
        model(5)
    );
}
