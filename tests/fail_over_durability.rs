//! What an acknowledged write survives across a fail-over, per
//! `acknowledge` mode, with a real `hat-monitor` 0.8.23 and two real
//! `hat-event-server` 0.9.44: four writers create models through the
//! active server (server 1) while it is stopped (SIGTERM), killed
//! (SIGKILL), or killed with its database deleted (a lost disk). Server 2,
//! its standby, takes over. Server 1 comes back on its disk where it has
//! one, and server 2 syncs what it lacks from it; then every acknowledged
//! model is looked for on server 2.
//!
//! The README states, per mode, what survives what; the cases asserted
//! here are the promises: a persisted write survives the active server's
//! stop and its kill, a registered write survives its stop. Every case
//! prints what it measured (`--nocapture`): acknowledged, lost.

use aimm_backend_api::{Backend, Model};
use aimm_backend_test_support::within;
use aimm_backend_tests::*;
use hat_eventer_client::eventer_msg::{EventPayload, QueryParams, Status};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Failure {
    Stop,
    Kill,
    LostDisk,
}

/// A backend on `server`, acknowledging as `mode` says, and the runtime its
/// client runs on.
fn host_on(server: &HatServer, mode: &str) -> (Arc<dyn Backend>, tokio::runtime::Runtime) {
    let (runtime, client) = connected_client(server, "durability", Duration::from_secs(10));
    let backend = open_plugin(
        &event_plugin(),
        json!({"model_prefix": ["aimm", "durable"], "acknowledge": mode}),
        Some(client),
    );
    (backend, runtime)
}

/// Creates models through `server` from four threads until `failure`
/// strikes it a second in; returns every model acknowledged.
fn write_through(server: &HatServer, mode: &str, failure: Failure) -> Vec<Model> {
    let (backend, _runtime) = host_on(server, mode);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Model>>> = Arc::default();
    let writers: Vec<_> = (0..4u64)
        .map(|writer| {
            let (backend, stop, acked) = (backend.clone(), stop.clone(), acked.clone());
            std::thread::spawn(move || {
                for i in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let bytes = test_bytes(writer << 32 | i, 4096);
                    match backend.create_model("durable.model".into(), bytes.into()) {
                        Ok(model) => acked.lock().unwrap().push(model),
                        // Once the server is gone every call fails at once.
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    match failure {
        Failure::Stop => server.stop(),
        Failure::Kill | Failure::LostDisk => server.kill(),
    }
    if failure == Failure::LostDisk {
        for entry in std::fs::read_dir(server.dir()).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("event.db") {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    // Writes that were under way when it struck have ended by now.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        within("a writer", move || writer.join().unwrap());
    }
    let acked = acked.lock().unwrap().clone();
    acked
}

/// Waits (60 s at most) until `server` (server 2) reports itself synced
/// with server 1 after `since`: it has every event server 1 had.
fn wait_synced_with_first(server: &HatServer, since: SystemTime) {
    let since = since
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let synced = query_raw(
            server,
            QueryParams::Latest {
                event_types: Some(vec![vec![
                    "event".into(),
                    "2".into(),
                    "synced".into(),
                    "1".into(),
                ]]),
            },
        );
        let done = synced.iter().any(|event| {
            let at = event.timestamp.s as f64 + event.timestamp.us as f64 / 1e6;
            let state = match &event.payload {
                Some(EventPayload::Json(text)) => serde_json::from_str::<serde_json::Value>(text)
                    .map(|v| v["state"] == "SYNCED")
                    .unwrap_or(false),
                _ => false,
            };
            state && at >= since
        });
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server 2 did not report itself synced with server 1 within 60 s: {synced:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The acknowledged models missing from `server`; fails the test if one is
/// there with other bytes.
fn lost_on(server: &HatServer, acked: &[Model]) -> Vec<i64> {
    let (backend, _runtime) = host_on(server, "persisted");
    let stored: BTreeMap<i64, Model> = backend
        .get_models()
        .unwrap()
        .into_iter()
        .map(|m| (m.instance_id, m))
        .collect();
    acked
        .iter()
        .filter(|model| match stored.get(&model.instance_id) {
            None => true,
            Some(found) => {
                assert_eq!(found, *model, "model {} changed", model.instance_id);
                false
            }
        })
        .map(|model| model.instance_id)
        .collect()
}

/// One case: writes through server 1 until `failure`, fail-over to server
/// 2, server 1 back where it has a disk, and what of the acknowledged
/// writes server 2 holds. Returns (acknowledged, lost).
fn case(mode: &str, failure: Failure) -> (usize, usize) {
    let (_monitor, first, second) = redundant_group();
    let acked = write_through(&first, mode, failure);
    assert!(
        acked.len() >= 8,
        "{mode} {failure:?}: only {} acknowledged",
        acked.len()
    );
    wait_status(&second, Status::Operational);
    if failure != Failure::LostDisk {
        let restarted = SystemTime::now();
        first.start_again();
        wait_status(&first, Status::Standby);
        wait_synced_with_first(&second, restarted);
    }
    let lost = lost_on(&second, &acked);
    eprintln!(
        "fail-over durability: acknowledge {mode}, active server {failure:?}: \
         {} acknowledged, {} lost",
        acked.len(),
        lost.len()
    );
    (acked.len(), lost.len())
}

#[test]
fn a_persisted_write_survives_the_active_servers_stop_and_kill() {
    for failure in [Failure::Stop, Failure::Kill] {
        let (_, lost) = case("persisted", failure);
        assert_eq!(
            lost, 0,
            "persisted writes lost when the active server {failure:?}"
        );
    }
    case("persisted", Failure::LostDisk);
}

#[test]
fn a_registered_write_survives_the_active_servers_stop() {
    let (_, lost) = case("registered", Failure::Stop);
    assert_eq!(
        lost, 0,
        "registered writes lost when the active server stopped"
    );
    case("registered", Failure::Kill);
    case("registered", Failure::LostDisk);
}

#[test]
fn what_a_sent_write_survives_is_measured() {
    for failure in [Failure::Stop, Failure::Kill, Failure::LostDisk] {
        case("sent", failure);
    }
}
