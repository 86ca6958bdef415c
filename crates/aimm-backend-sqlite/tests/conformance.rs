//! The conformance suite in-process, against the backend itself (not the
//! plugin library): so that a change to the store is checked by the store's
//! own `cargo test`, in every journal mode a file can be in, and through
//! the plugin's `BackendPlugin` (its `scratch_conf` included), as a
//! third-party plugin's own tests run it.

use aimm_backend_api::{Backend, BackendError};
use aimm_backend_sqlite::{JournalMode, SqliteBackend, SqliteConfig};
use std::sync::Arc;

#[test]
fn the_sqlite_backend_passes_conformance_in_every_journal_mode() {
    for mode in [
        JournalMode::Wal,
        JournalMode::Delete,
        JournalMode::Truncate,
        JournalMode::Persist,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut conf = SqliteConfig::new(dir.path().join("conformance.db"));
        conf.journal_mode = Some(mode);
        let target = || -> Result<Arc<dyn Backend>, BackendError> {
            Ok(Arc::new(SqliteBackend::open(conf.clone())?))
        };
        let report = aimm_backend_conformance::run(&target);
        assert!(report.all_passed(), "journal mode {mode:?}:\n{report}");
    }
}

#[test]
fn the_sqlite_plugin_passes_conformance_in_process_on_its_scratch_store() {
    let target =
        aimm_backend_conformance::InProcessTarget::<aimm_backend_sqlite::SqlitePlugin>::scratch(
            serde_json::json!({"module": "aimm_backend_sqlite"}),
        )
        .unwrap();
    let path = target.conf()["path"].as_str().unwrap().to_string();
    let report = aimm_backend_conformance::run(&target);
    assert!(report.all_passed(), "{report}");
    assert!(
        std::path::Path::new(&path).is_file(),
        "the scratch store is {path}"
    );
}
