//! Listeners hear of every change: this backend's own writes once, and
//! models that another connection (another process, in production) creates
//! or whose type or size it changes, found by polling the file.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

/// Well above the poll interval (200 ms), for a loaded machine.
const HEARD_WITHIN: Duration = Duration::from_secs(20);

fn listen(backend: &SqliteBackend) -> (u64, mpsc::Receiver<Model>) {
    let (heard, changes) = mpsc::channel();
    let registration = backend
        .register_model_change_cb(Arc::new(move |m: &Model| {
            let _ = heard.send(m.clone());
        }))
        .unwrap();
    (registration, changes)
}

fn next(changes: &mpsc::Receiver<Model>, what: &str) -> Model {
    changes
        .recv_timeout(HEARD_WITHIN)
        .unwrap_or_else(|_| panic!("no change reported for {what} within {HEARD_WITHIN:?}"))
}

#[test]
fn other_connections_changes_are_reported_with_their_bytes_and_own_writes_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watched.db");
    let ours = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let theirs = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let (registration, changes) = listen(&ours);

    let own = ours.create_model("own".into(), vec![1].into()).unwrap();
    assert_eq!(next(&changes, "our own create"), own);

    let created = theirs
        .create_model("theirs".into(), vec![2, 3].into())
        .unwrap();
    assert_eq!(next(&changes, "another connection's create"), created);
    let resized = Model::new(created.instance_id, "theirs", vec![4, 5, 6]);
    theirs.update_model(resized.clone()).unwrap();
    assert_eq!(next(&changes, "another connection's resize"), resized);
    let retyped = Model::new(created.instance_id, "retyped", vec![4, 5, 6]);
    theirs.update_model(retyped.clone()).unwrap();
    assert_eq!(next(&changes, "another connection's type change"), retyped);

    // Our own write was not reported a second time by the poller.
    assert!(
        changes.recv_timeout(Duration::from_millis(600)).is_err(),
        "a change was reported twice"
    );

    ours.unregister_model_change_cb(registration).unwrap();
    theirs.create_model("late".into(), vec![7].into()).unwrap();
    assert!(
        changes.recv_timeout(Duration::from_millis(600)).is_err(),
        "reported after the listener was unregistered"
    );
}
