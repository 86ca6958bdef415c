//! Reads against a real PostgreSQL 15 while another connection writes:
//! each read sees a model whole, as one snapshot.

use aimm_backend_api::{Backend, Model};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig};
use aimm_backend_test_support::{within, PostgresServer};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// State `i % 2` of the model: its type and bytes (of different sizes).
/// Small, so that updates commit often and a read that took two snapshots
/// would straddle one.
fn state(i: usize) -> (&'static str, Vec<u8>) {
    if i % 2 == 0 {
        ("even", vec![b'e'; 3000])
    } else {
        ("odd", vec![b'o'; 1000])
    }
}

fn assert_whole(model: &Model) {
    let (model_type, bytes) = state(if model.model_type.as_str() == "even" {
        0
    } else {
        1
    });
    assert_eq!(model.model_type.as_str(), model_type);
    assert!(
        model.instance.as_slice() == bytes.as_slice(),
        "a {} model of {} bytes: not as written",
        model_type,
        model.instance.len()
    );
}

#[test]
fn a_read_sees_a_model_whole_while_another_host_updates_it() {
    let server = PostgresServer::start();
    let conf = PostgresConfig::from_json(&server.backend_section("reads")).unwrap();
    let writer = Arc::new(PostgresBackend::open(conf.clone()).unwrap());
    let reader = PostgresBackend::open(conf).unwrap();
    let (model_type, bytes) = state(0);
    let id = writer
        .create_model(model_type.into(), bytes.into())
        .unwrap()
        .instance_id;

    let stop = Arc::new(AtomicBool::new(false));
    let updates = {
        let (writer, stop) = (writer.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 1;
            while !stop.load(Ordering::SeqCst) {
                let (model_type, bytes) = state(i);
                writer
                    .update_model(Model::new(id, model_type, bytes))
                    .unwrap();
                i += 1;
            }
            i - 1
        })
    };
    within("reads during updates", move || {
        for _ in 0..1000 {
            assert_whole(&reader.get_model(id).unwrap());
            let all = reader.get_models().unwrap();
            assert_eq!(all.len(), 1);
            assert_whole(&all[0]);
        }
    });
    stop.store(true, Ordering::SeqCst);
    let updated = updates.join().unwrap();
    assert!(updated > 2, "only {updated} updates ran during the reads");
}

#[test]
fn a_model_whose_chunks_were_damaged_is_an_error_naming_it_never_wrong_bytes() {
    let server = PostgresServer::start();
    let conf = PostgresConfig::from_json(&server.backend_section("damaged")).unwrap();
    let backend = PostgresBackend::open(conf).unwrap();
    let size = 20 << 20; // chunks of 8, 8 and 4 MiB
    let id = backend
        .create_model("damaged".into(), vec![7u8; size].into())
        .unwrap()
        .instance_id;
    let calls = |expected: &str| {
        let errors = [
            backend.get_model(id).unwrap_err(),
            backend.get_models().unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err.kind, aimm_backend_api::ErrorKind::Storage, "{err}");
            assert!(err.message.contains(expected), "{err}");
        }
    };
    assert_eq!(
        server.psql(
            "SELECT string_agg(seq || ':' || length(data), ' ' ORDER BY seq) \
             FROM damaged.aimm_models_chunks"
        ),
        "0:8388608 1:8388608 2:4194304",
        "stored in chunks of 8 MiB"
    );
    server
        .psql("UPDATE damaged.aimm_models_chunks SET data = data || '\\x00'::bytea WHERE seq = 2");
    calls(&format!(
        "model {id}: its chunks hold {} bytes, its row says {size}",
        size + 1
    ));
    server.psql("DELETE FROM damaged.aimm_models_chunks WHERE seq = 1");
    calls(&format!(
        "model {id}: its chunks hold {} bytes, its row says {size}",
        size - (8 << 20) + 1
    ));
}
