//! The connections calls run on, against a real PostgreSQL 15: as many as
//! configured, no more, each used when calls run at once.

use aimm_backend_api::Backend;
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::{within, PostgresServer};
use std::sync::Arc;

fn our_connections(server: &PostgresServer) -> u32 {
    server
        .psql(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'aimm-backend-postgres'",
        )
        .parse()
        .unwrap()
}

#[test]
fn calls_on_many_threads_share_exactly_the_configured_connections() {
    let server = PostgresServer::start();
    let mut section = server.backend_section("pool");
    section["connections"] = 3.into();
    let backend =
        Arc::new(PostgresBackend::open(PostgresConfig::from_json(&section).unwrap()).unwrap());
    assert_eq!(our_connections(&server), 1, "one connection to open with");
    let writers = backend.clone();
    within("8 threads of creates", move || {
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                let backend = &writers;
                scope.spawn(move || {
                    for i in 0..40u8 {
                        backend
                            .create_model("pool".into(), vec![t, i].into())
                            .unwrap();
                    }
                });
            }
        });
    });
    assert_eq!(backend.list_models().unwrap().len(), 8 * 40);
    assert_eq!(
        our_connections(&server),
        3,
        "the configured number, each used"
    );
    backend.close().unwrap();
    // The server's processes end a moment after their sockets close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while our_connections(&server) != 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(our_connections(&server), 0, "closed with the backend");
}
