//! Writes from many threads of one backend: grouped into shared commits,
//! each acknowledged with its own result.

use aimm_backend_api::{Backend, ErrorKind, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use std::sync::Arc;

#[test]
fn failing_writes_fail_alone_among_concurrent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        Arc::new(SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap());
    let taken = backend
        .create_model("seed".into(), vec![0u8].into())
        .unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..16u8)
            .map(|i| {
                let backend = backend.clone();
                scope.spawn(move || {
                    let created =
                        backend.create_model(format!("t{i}").into(), vec![i; 4096].into());
                    let missing =
                        backend.update_model(Model::new(1_000_000 + i as i64, "x", vec![]));
                    let conflict = backend.import_model(Model::new(taken.instance_id, "x", vec![]));
                    (i, created, missing, conflict)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids = std::collections::BTreeSet::new();
    for (i, created, missing, conflict) in results {
        let created = created.unwrap();
        assert!(ids.insert(created.instance_id));
        assert_eq!(
            backend.get_model(created.instance_id).unwrap(),
            Model::new(created.instance_id, format!("t{i}"), vec![i; 4096])
        );
        assert_eq!(missing.unwrap_err().kind, ErrorKind::NotFound);
        assert_eq!(conflict.unwrap_err().kind, ErrorKind::Conflict);
    }
    assert_eq!(backend.list_models().unwrap().len(), 17);
    assert_eq!(backend.get_model(taken.instance_id).unwrap(), taken);
}
