//! Listeners hear of every change: this backend's own writes once, and
//! models that another connection (another process, in production) creates
//! or whose type or size it changes, found by polling the file.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// One test at a time: `pollers` counts the threads of the whole process.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The `/proc/self/task` entries of the change pollers running in this
/// process (threads named `aimm-sqlite-watch`, which the kernel cuts to 15
/// bytes).
fn poller_tasks() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .map(|task| task.unwrap().path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|name| name.starts_with("aimm-sqlite-wat"))
        })
        .collect()
}

fn pollers() -> usize {
    poller_tasks().len()
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

/// Two backends on one fresh file: `ours` is watched, `theirs` stands for
/// another process writing the same file.
fn two_backends() -> (tempfile::TempDir, SqliteBackend, SqliteBackend) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watched.db");
    let ours = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    let theirs = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    (dir, ours, theirs)
}

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
    let (_dir, ours, theirs) = two_backends();
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
    let (_dir, ours, theirs) = two_backends();
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
    let (_dir, ours, theirs) = two_backends();
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

/// Closing (`close`, or dropping the backend) returns only after a listener
/// call the poller is making has returned: a host may free what its listener
/// uses as soon as the backend is gone.
#[test]
fn close_and_drop_wait_for_a_listener_call_in_progress() {
    let _serial = serial();
    for how in ["close", "drop"] {
        close_during_a_listener_call(how);
    }
}

fn close_during_a_listener_call(how: &str) {
    let (_dir, ours, theirs) = two_backends();
    let (entered, in_call) = mpsc::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let done = finished.clone();
    ours.register_model_change_cb(Arc::new(move |_: &Model| {
        let _ = entered.send(());
        std::thread::sleep(Duration::from_millis(500));
        done.store(true, Ordering::SeqCst);
    }))
    .unwrap();
    theirs.create_model("t".into(), vec![1].into()).unwrap();
    in_call
        .recv_timeout(HEARD_WITHIN)
        .expect("the poller called the listener");
    if how == "close" {
        ours.close().unwrap();
    } else {
        drop(ours);
    }
    assert!(
        finished.load(Ordering::SeqCst),
        "{how} returned while the poller was still calling a listener"
    );
}

#[test]
fn a_listener_may_unregister_itself_from_within_its_call() {
    let _serial = serial();
    let (_dir, ours, theirs) = two_backends();
    let ours = Arc::new(ours);
    let registration = Arc::new(OnceLock::new());
    let (heard, calls) = mpsc::channel();
    let (backend, own_registration) = (ours.clone(), registration.clone());
    let id = ours
        .register_model_change_cb(Arc::new(move |model: &Model| {
            let left = backend.unregister_model_change_cb(*own_registration.get().unwrap());
            let _ = heard.send((model.clone(), left.is_ok()));
        }))
        .unwrap();
    registration.set(id).unwrap();
    let created = theirs.create_model("t".into(), vec![1].into()).unwrap();
    let (model, left) = calls
        .recv_timeout(HEARD_WITHIN)
        .expect("the listener was called and returned");
    assert_eq!(model, created);
    assert!(left, "unregistering from within the call failed");
    await_pollers(0, "once the only listener left from within its call");
    theirs.create_model("t".into(), vec![2].into()).unwrap();
    assert!(calls.recv_timeout(Duration::from_secs(1)).is_err());
}

#[test]
fn a_dropped_backend_stops_watching_the_file() {
    let _serial = serial();
    let (_dir, ours, theirs) = two_backends();
    let (_registration, changes) = listen(&ours);
    await_pollers(1, "with a listener");
    drop(ours);
    await_pollers(0, "after the backend was dropped");
    theirs.create_model("t".into(), vec![1].into()).unwrap();
    assert!(changes.recv_timeout(Duration::from_secs(1)).is_err());
}

/// Nanoseconds the thread of `task` has run on a CPU.
fn cpu_ns(task: &std::path::Path) -> u64 {
    let stat = std::fs::read_to_string(task.join("schedstat")).expect("schedstat of the poller");
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn an_idle_poller_reads_a_counter_not_the_table() {
    let _serial = serial();
    let (_dir, ours, _) = two_backends();
    let mut conn = rusqlite::Connection::open(ours.path()).unwrap();
    let rows = conn.transaction().unwrap();
    for _ in 0..200_000 {
        rows.execute(
            "INSERT INTO models (type, instance) VALUES ('t', x'00')",
            [],
        )
        .unwrap();
    }
    rows.commit().unwrap();
    let (_registration, _changes) = listen(&ours);
    await_pollers(1, "with a listener");
    let poller = &poller_tasks()[0];
    let before = cpu_ns(poller);
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_ns(poller) - before;
    // Ten ticks. Each reads `PRAGMA data_version` (microseconds); a scan of
    // the 200,000 rows would cost tens of milliseconds each.
    eprintln!("idle poller: {} us of CPU in 2 s", spent / 1000);
    assert!(
        spent < 50_000_000,
        "the idle poller ran {} ms in 2 s",
        spent / 1_000_000
    );
}
