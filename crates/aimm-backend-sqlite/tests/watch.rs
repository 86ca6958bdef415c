//! Listeners hear of every change: this backend's own writes once, and
//! models that another connection (another process, in production) creates
//! or whose type or size it changes, found by polling the file.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// One test at a time: `pollers` counts the threads of the whole process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The change pollers running in this process (threads named
/// `aimm-sqlite-watch`, which the kernel cuts to 15 bytes).
fn pollers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter(|task| {
            let comm = task.as_ref().unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|name| name.starts_with("aimm-sqlite-wat"))
        })
        .count()
}

/// Waits until `n` pollers run: a thread takes its name a moment after it
/// starts and leaves `/proc` a moment after it has been joined.
fn await_pollers(n: usize, what: &str) {
    let deadline = std::time::Instant::now() + HEARD_WITHIN;
    while pollers() != n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} pollers instead of {n} {what} after {HEARD_WITHIN:?}",
            pollers()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

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
    let _serial = serial();
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

#[test]
fn a_closed_backend_stops_watching_the_file() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watched.db");
    let ours = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let theirs = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let (_registration, changes) = listen(&ours);
    let before = theirs
        .create_model("before".into(), vec![1].into())
        .unwrap();
    assert_eq!(next(&changes, "a create before close"), before);

    ours.close().unwrap();
    theirs.create_model("after".into(), vec![2].into()).unwrap();
    // Five poll intervals: a poller still running would have reported it.
    assert!(
        changes.recv_timeout(Duration::from_secs(1)).is_err(),
        "reported after the backend was closed"
    );
}

#[test]
fn a_listener_registered_right_after_the_last_one_left_gets_one_poller() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watched.db");
    let ours = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let theirs = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    await_pollers(0, "before the test");
    let (first, _) = listen(&ours);
    await_pollers(1, "with a listener");
    ours.unregister_model_change_cb(first).unwrap();
    let (_second, changes) = listen(&ours);
    let created = theirs.create_model("t".into(), vec![1].into()).unwrap();
    assert_eq!(next(&changes, "a create after re-registering"), created);
    assert!(
        changes.recv_timeout(Duration::from_secs(1)).is_err(),
        "a change was reported twice"
    );
    assert_eq!(pollers(), 1, "the first listener's poller was stopped");
}
