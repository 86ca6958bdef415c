//! The connections calls run on, against a real PostgreSQL 15: as many as
//! configured, no more, each used when calls run at once; and what becomes
//! of them when the server goes away and comes back.

use aimm_backend_api::{Backend, ErrorKind, InstanceId};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::{within, within_for, PostgresServer};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend on `server` keeping at most `connections` connections.
fn open(server: &PostgresServer, schema: &str, connections: u32) -> Arc<PostgresBackend> {
    let mut section = server.backend_section(schema);
    section["connections"] = connections.into();
    Arc::new(PostgresBackend::open(PostgresConfig::from_json(&section).unwrap()).unwrap())
}

/// Creates `per_thread` models on each of `threads` threads at once.
fn create_on_threads(backend: &Arc<PostgresBackend>, threads: u8, per_thread: u8) {
    let writers = backend.clone();
    within("creates on several threads", move || {
        std::thread::scope(|scope| {
            for t in 0..threads {
                let backend = &writers;
                scope.spawn(move || {
                    for i in 0..per_thread {
                        backend
                            .create_model("pool".into(), vec![t, i].into())
                            .unwrap();
                    }
                });
            }
        });
    });
}

#[test]
fn calls_on_many_threads_share_exactly_the_configured_connections() {
    let server = PostgresServer::start();
    let backend = open(&server, "pool", 3);
    assert_eq!(
        server.backend_connections(),
        1,
        "one connection to open with"
    );
    create_on_threads(&backend, 8, 40);
    assert_eq!(backend.list_models().unwrap().len(), 8 * 40);
    assert_eq!(
        server.backend_connections(),
        3,
        "the configured number, each used"
    );
    backend.close().unwrap();
    server.wait_for_backend_connections(0);
}

#[test]
fn while_the_server_is_down_calls_fail_at_once_and_the_same_backend_works_when_it_is_back() {
    let server = PostgresServer::start();
    let backend = open(&server, "down", 2);
    let before = backend
        .create_model("down".into(), b"before".to_vec().into())
        .unwrap();
    // Idle longer than the pool trusts a connection unchecked (1 s), so
    // the first call below checks the dead one first.
    std::thread::sleep(Duration::from_millis(1100));
    server.stop();
    let down = backend.clone();
    let errors = within_for(
        "calls while the server is down",
        Duration::from_secs(20),
        move || {
            (0..6)
                .map(|i| match i % 3 {
                    0 => down.list_models().map(|_| ()).unwrap_err(),
                    1 => down.get_model(1).map(|_| ()).unwrap_err(),
                    _ => down
                        .create_model("down".into(), vec![i].into())
                        .map(|_| ())
                        .unwrap_err(),
                })
                .collect::<Vec<_>>()
        },
    );
    for err in errors {
        assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
        assert!(err.message.contains("aimm@127.0.0.1"), "{err}");
    }
    server.start_again();
    // Every failed connection was given up: both may be opened again, and
    // threads that need both at once get them.
    create_on_threads(&backend, 4, 25);
    assert_eq!(backend.list_models().unwrap().len(), 1 + 4 * 25);
    assert_eq!(stored(&backend, before.instance_id), b"before");
    assert_eq!(server.backend_connections(), 2, "both opened again");
}

#[test]
fn a_backend_idle_across_a_database_restart_works_at_its_next_call() {
    let server = PostgresServer::start();
    let backend = open(&server, "idle", 4);
    let before = backend
        .create_model("idle".into(), b"before".to_vec().into())
        .unwrap();
    let idle_since = Instant::now();
    server.stop();
    server.start_again();
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(idle_since.elapsed()));
    let after = backend
        .create_model("idle".into(), b"after".to_vec().into())
        .expect("the first call after the restart");
    assert_eq!(backend.list_models().unwrap().len(), 2);
    for (id, bytes) in [(before.instance_id, "before"), (after.instance_id, "after")] {
        assert_eq!(stored(&backend, id), bytes.as_bytes());
    }
}

/// The bytes stored as model `id`.
fn stored(backend: &PostgresBackend, id: InstanceId) -> Vec<u8> {
    backend.get_model(id).unwrap().instance.to_vec()
}

#[test]
fn a_connection_the_server_terminates_fails_one_call_as_unavailable_and_is_replaced() {
    let server = PostgresServer::start();
    // One connection: a lost one not given up would leave none to open.
    let backend = open(&server, "terminated", 1);
    backend.list_models().unwrap();
    // The administrator ends our connections.
    server.psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'aimm-backend-postgres'",
    );
    let calls = backend.clone();
    let (err, model) = within_for(
        "calls after the termination",
        Duration::from_secs(20),
        move || {
            let err = calls.list_models().unwrap_err();
            let model = calls
                .create_model("after".into(), b"replaced".to_vec().into())
                .unwrap();
            (err, model)
        },
    );
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.message.contains("aimm@127.0.0.1"), "{err}");
    assert_eq!(
        backend
            .get_model(model.instance_id)
            .unwrap()
            .instance
            .as_slice(),
        b"replaced"
    );
}
