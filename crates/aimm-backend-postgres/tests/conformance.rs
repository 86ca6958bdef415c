//! The conformance suite in-process against a real PostgreSQL 15, through
//! the backend itself and through the plugin's `BackendPlugin` (its
//! `scratch_conf` included).

use aimm_backend_api::{Backend, BackendError};
use aimm_backend_postgres::{PostgresBackend, PostgresConfig, PostgresPlugin};
use aimm_backend_test_support::PostgresServer;
use std::sync::Arc;

#[test]
fn the_postgres_backend_passes_conformance() {
    let server = PostgresServer::start();
    let conf = PostgresConfig::from_json(&server.backend_section("conformance")).unwrap();
    let target = || -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(PostgresBackend::open(conf.clone())?))
    };
    let report = aimm_backend_conformance::run(&target);
    assert!(report.all_passed(), "{report}");
}

#[test]
fn the_postgres_plugin_passes_conformance_in_process_on_its_scratch_store() {
    let server = PostgresServer::start();
    let target = aimm_backend_conformance::InProcessTarget::<PostgresPlugin>::scratch(
        server.backend_section("public"),
    )
    .unwrap();
    let schema = target.conf()["schema"].as_str().unwrap().to_string();
    assert!(schema.starts_with("aimm_scratch_"), "{schema}");
    let report = aimm_backend_conformance::run(&target);
    assert!(report.all_passed(), "{report}");
}
