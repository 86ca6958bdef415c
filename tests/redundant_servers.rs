//! The event backend across a redundant group: a real `hat-monitor` 0.8.23
//! and two real `hat-event-server` 0.9.44 on loopback, started, stopped and
//! killed here. The monitor blesses one server at a time; the other is a
//! standby that syncs with it both ways. Models are created through the
//! operational server (a client of its own, as the Python AIMM server
//! rebuilds its runner with a client of the new server on a fail-over),
//! and every acknowledged model must end up on every server, byte-exact,
//! under an id no other model holds.

use aimm_backend_api::{Backend, Model};
use aimm_backend_tests::*;
use hat_eventer_client::eventer_msg::Status;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const PREFIX: &str = "group";

/// A backend on `server` (a host's own client, subscribed to the prefix),
/// kept with the runtime its client runs on.
struct Host {
    backend: Arc<dyn Backend>,
    _runtime: tokio::runtime::Runtime,
}

fn host_on(server: &HatServer) -> Host {
    let (runtime, client) = connected_client(server, "redundant", Duration::from_secs(10));
    let backend = open_plugin(
        &event_plugin(),
        json!({"model_prefix": ["aimm", PREFIX]}),
        Some(client),
    );
    Host {
        backend,
        _runtime: runtime,
    }
}

/// Creates `count` models through `server`, which must be operational;
/// returns them as acknowledged.
fn create_through(server: &HatServer, count: usize, seed: u64) -> Vec<Model> {
    let host = host_on(server);
    (0..count)
        .map(|i| {
            let bytes = test_bytes(seed + i as u64, 1000 + i * 37);
            host.backend
                .create_model(format!("model.{seed}").as_str().into(), bytes.into())
                .unwrap_or_else(|err| panic!("create {i} through {}: {err}", server.address()))
        })
        .collect()
}

/// Waits until `server` holds every model of `expected`, byte-exact (a
/// standby syncs within a second or two), failing the test after 60 s with
/// what is missing or different.
fn wait_holds(server: &HatServer, expected: &[Model]) {
    let host = host_on(server);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = host.backend.get_models().unwrap();
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(
                |model| match stored.iter().find(|m| m.instance_id == model.instance_id) {
                    None => Some(format!("{} missing", model.instance_id)),
                    Some(m) if m != model => Some(format!(
                        "{} holds {} ({} bytes), not {} ({} bytes)",
                        model.instance_id,
                        m.model_type,
                        m.instance.len(),
                        model.model_type,
                        model.instance.len()
                    )),
                    Some(_) => None,
                },
            )
            .collect();
        if wrong.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server {} after 60 s: {} of {} acknowledged models wrong: {wrong:?}",
            server.address(),
            wrong.len(),
            expected.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn assert_distinct(models: &[Model]) {
    let ids: BTreeSet<_> = models.iter().map(|m| m.instance_id).collect();
    assert_eq!(
        ids.len(),
        models.len(),
        "ids handed out twice: {:?}",
        models.iter().map(|m| m.instance_id).collect::<Vec<_>>()
    );
}

#[test]
fn a_store_of_single_server_ids_is_read_and_extended_without_collisions() {
    use hat_eventer_client::eventer_msg::{EventPayload, RegisterEvent};
    let (_monitor, first, second) = redundant_group();
    let old: Vec<Model> = (1..=64i64)
        .flat_map(|session| (1..=16i64).map(move |instance| (session << 16) | instance))
        .map(|id| Model::new(id, "old.model", vec![1, 2, 3]))
        .collect();
    register_raw(
        &first,
        old.iter()
            .map(|model| RegisterEvent {
                event_type: vec!["aimm".into(), PREFIX.into(), model.instance_id.to_string()],
                source_timestamp: None,
                payload: Some(EventPayload::Json(
                    r#"{"type": "old.model", "instance": "AQID"}"#.into(),
                )),
            })
            .collect(),
    );
    wait_holds(&second, &old);

    first.stop();
    wait_status(&second, Status::Operational);
    let new = create_through(&second, 40, 600);
    let old_ids: BTreeSet<_> = old.iter().map(|m| m.instance_id).collect();
    let reused: Vec<_> = new
        .iter()
        .map(|m| m.instance_id)
        .filter(|id| old_ids.contains(id))
        .collect();
    assert!(reused.is_empty(), "new models took old ids {reused:?}");
    let all: Vec<Model> = old.into_iter().chain(new).collect();
    assert_distinct(&all);
    wait_holds(&second, &all);
}

#[test]
fn models_created_across_fail_overs_are_on_every_server_under_distinct_ids() {
    let (_monitor, first, second) = redundant_group();
    let mut all = create_through(&first, 10, 100);

    first.stop();
    wait_status(&second, Status::Operational);
    all.extend(create_through(&second, 10, 200));

    first.start_again();
    wait_status(&first, Status::Standby);
    wait_holds(&first, &all);

    second.kill();
    wait_status(&first, Status::Operational);
    all.extend(create_through(&first, 10, 300));

    second.start_again();
    wait_status(&second, Status::Standby);
    assert_distinct(&all);
    wait_holds(&second, &all);
    wait_holds(&first, &all);
}

/// The standby is down (for maintenance) while models are written; then
/// the first server goes down and the second runs alone; then the first
/// returns and both sync. Each server numbers its sessions from 1 on its
/// own, and the two went through the same steps, so they numbered alike:
/// with ids of `(session, instance)` alone, every id of the second run was
/// one the first run had handed out.
#[test]
fn a_server_that_ran_alone_while_the_other_was_down_syncs_without_id_collisions() {
    let monitor = HatMonitor::start();
    let first = HatServer::start_in_group(&monitor, 1);
    wait_status(&first, Status::Operational);
    let mut all = create_through(&first, 20, 400);

    first.stop();
    let second = HatServer::start_in_group(&monitor, 2);
    wait_status(&second, Status::Operational);
    all.extend(create_through(&second, 20, 500));

    first.start_again();
    wait_status(&first, Status::Standby);
    assert_distinct(&all);
    wait_holds(&first, &all);
    wait_holds(&second, &all);
}

/// A config that follows the active server of group `event` through
/// `monitor` (the Python AIMM server's keys), with a short `timeout`.
fn monitor_conf(dir: &std::path::Path, monitor: &HatMonitor) -> std::path::PathBuf {
    write_file(
        dir,
        "group.yaml",
        &format!(
            "name: cli-host\nhat:\n  monitor_component: {{host: 127.0.0.1, port: {}, group: aimm, \
             event_server_group: event, timeout: 2}}\nbackend:\n  module: aimm.server.backend.event\n  \
             model_prefix: [aimm, {PREFIX}]\n",
            monitor.port
        ),
    )
}

/// `put` of `file` through `conf`: the new id, or the exit code and stderr
/// of a failure. Fails the test if it takes longer than 30 s.
fn try_put(
    work: &std::path::Path,
    conf: &std::path::Path,
    file: &std::path::Path,
) -> Result<i64, (i32, String)> {
    let output = output_within(
        cli(work)
            .arg("--conf")
            .arg(conf)
            .args(["put", "cli.model"])
            .arg(file),
        Duration::from_secs(30),
        "put through the monitor",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    match output.status.code() {
        Some(0) => Ok(stdout.trim().parse().expect("put prints the new id")),
        code => Err((
            code.unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into(),
        )),
    }
}

/// The CLI with `hat.monitor_component`: `put` and `list` reach the active
/// server; with no server active they fail at once as unavailable, naming
/// the group; once the monitor blesses another server they work again; and
/// one `watch` keeps printing across the fail-over.
#[test]
fn the_cli_follows_the_active_server_through_the_monitor() {
    let (monitor, first, second) = redundant_group();
    let work = tempfile::tempdir().unwrap();
    let conf = monitor_conf(work.path(), &monitor);
    let mut watcher = Watcher::start(work.path(), &conf);
    let file = write_file(work.path(), "model.bin", "before");
    let before = try_put(work.path(), &conf, &file).expect("put through server 1");
    assert_eq!(watcher.next_change()["instance_id"], before);
    wait_holds(
        &second,
        &[Model::new(before, "cli.model", b"before".to_vec())],
    );

    // Server 2 down for maintenance, then server 1 killed: no server.
    second.stop();
    first.kill();
    let started = Instant::now();
    let (code, stderr) = try_put(work.path(), &conf, &file).expect_err("no server is active");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the active Hat event server of group event")
            && stderr.contains("unavailable"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    second.start_again();
    wait_status(&second, Status::Operational);
    let file = write_file(work.path(), "model.bin", "after");
    let after = try_put(work.path(), &conf, &file).expect("put through server 2");
    assert_ne!(after, before);
    assert_eq!(
        watcher.next_change()["instance_id"],
        after,
        "the watch running since before the fail-over printed the new model"
    );
    let listed = run_expecting(
        cli(work.path())
            .arg("--conf")
            .arg(&conf)
            .args(["list", "--json"]),
        0,
    );
    let models: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: BTreeSet<i64> = models
        .iter()
        .map(|m| m["instance_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([before, after]));
    watcher.stop();
}
