//! An update that would leave a model as the file holds it commits nothing
//! and tells no listener; one that changes anything, or that follows
//! another connection's write, is written. Commits are counted by a second
//! connection's `PRAGMA data_version`, which moves with every commit of
//! any other connection, this backend's included.

use aimm_backend_api::{Backend, Model, ModelChangeListener};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use rusqlite::Connection;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Below, at and above the size from which models are written in chunks.
const SIZES: [usize; 4] = [0, 4096, 1 << 20, (3 << 20) + 5];

struct Store {
    _dir: tempfile::TempDir,
    backend: SqliteBackend,
    observer: Connection,
}

impl Store {
    fn open() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
        let observer = Connection::open(&path).unwrap();
        Store {
            _dir: dir,
            backend,
            observer,
        }
    }

    fn data_version(&self) -> i64 {
        self.observer
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .unwrap()
    }

    /// Whether `update` committed anything (and checks it is stored).
    fn commits(&self, update: &Model) -> bool {
        let before = self.data_version();
        assert_eq!(&self.backend.update_model(update.clone()).unwrap(), update);
        let stored = self.backend.get_model(update.instance_id).unwrap();
        assert!(
            stored == *update,
            "model {} not as updated",
            update.instance_id
        );
        self.data_version() != before
    }
}

fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

struct Counter(AtomicUsize);

impl ModelChangeListener for Counter {
    fn on_model_change(&self, _model: &Model) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_same_type_and_bytes_again_commit_nothing_and_tell_no_listener() {
    for size in SIZES {
        let store = Store::open();
        let heard = Arc::new(Counter(AtomicUsize::new(0)));
        store
            .backend
            .register_model_change_cb(heard.clone())
            .unwrap();
        let created = store
            .backend
            .create_model("t".into(), bytes(1, size).into())
            .unwrap();
        assert_eq!(heard.0.load(Ordering::SeqCst), 1);
        assert!(!store.commits(&created), "{size} B: as created");
        assert_eq!(
            heard.0.load(Ordering::SeqCst),
            1,
            "{size} B: nothing changed"
        );
        if size > 0 {
            let mut changed = created.clone();
            changed.instance[size - 1] ^= 1;
            assert!(store.commits(&changed), "{size} B: last byte changed");
            assert_eq!(heard.0.load(Ordering::SeqCst), 2, "{size} B: a change");
            assert!(!store.commits(&changed), "{size} B: the change again");
            assert_eq!(heard.0.load(Ordering::SeqCst), 2);
        }
    }
}

#[test]
fn the_same_bytes_under_another_type_or_length_are_written() {
    for size in SIZES {
        let store = Store::open();
        let created = store
            .backend
            .create_model("t".into(), bytes(2, size).into())
            .unwrap();
        let id = created.instance_id;
        assert!(
            store.commits(&Model::new(id, "u", bytes(2, size))),
            "{size} B"
        );
        assert!(
            store.commits(&Model::new(id, "u", bytes(2, size + 1))),
            "{size} B"
        );
        assert!(
            !store.commits(&Model::new(id, "u", bytes(2, size + 1))),
            "{size} B"
        );
    }
}

#[test]
fn another_connections_write_in_between_is_not_lost() {
    for size in SIZES {
        let store = Store::open();
        let created = store
            .backend
            .create_model("t".into(), bytes(3, size).into())
            .unwrap();
        // As another process would: straight into the file.
        let others = [bytes(4, size), bytes(4, size + 7)];
        // (Of no bytes, there is no other model of the same length.)
        for other in others.iter().filter(|other| **other != *created.instance) {
            store
                .observer
                .execute(
                    "UPDATE models SET instance = ?1 WHERE id = ?2",
                    rusqlite::params![other, created.instance_id],
                )
                .unwrap();
            assert!(store.commits(&created), "{size} B: back to the backend's");
        }
        store
            .observer
            .execute(
                "UPDATE models SET type = 'other' WHERE id = ?1",
                [created.instance_id],
            )
            .unwrap();
        assert!(store.commits(&created), "{size} B: the type changed");
    }
}

#[test]
fn an_update_of_an_unknown_id_is_still_refused() {
    let store = Store::open();
    let err = store
        .backend
        .update_model(Model::new(5, "t", Vec::new()))
        .unwrap_err();
    assert_eq!(err.kind, aimm_backend_api::ErrorKind::NotFound, "{err}");
}
