//! The settings in effect on the live connection are the documented and
//! configured ones: `synchronous = EXTRA` and the asked-for journal mode in
//! every mode, and the configured `busy_timeout` (a write waits for another
//! connection's lock up to that long, and no longer).
//!
//! Locks are held by a second, plain SQLite connection in an `IMMEDIATE`
//! transaction, as another process's writer would hold them.

use aimm_backend_api::{Backend, ErrorKind};
use aimm_backend_sqlite::{JournalMode, SqliteBackend, SqliteConfig};
use std::path::Path;
use std::time::{Duration, Instant};

fn open(path: &Path, journal_mode: JournalMode, busy_timeout: f64) -> SqliteBackend {
    let mut conf = SqliteConfig::new(path);
    conf.journal_mode = Some(journal_mode);
    conf.busy_timeout = busy_timeout;
    SqliteBackend::open(conf).unwrap()
}

/// Holds the file's write lock from another connection for `hold`, then
/// releases it; returns once the lock is held.
fn hold_write_lock(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let (locked, is_locked) = std::sync::mpsc::channel();
    let path = path.to_path_buf();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    });
    is_locked
        .recv_timeout(Duration::from_secs(30))
        .expect("the other connection took the lock");
    holder
}

const MODES: [JournalMode; 2] = [JournalMode::Wal, JournalMode::Delete];

#[test]
fn every_journal_mode_commits_with_synchronous_extra() {
    for (mode, name) in [
        (JournalMode::Wal, "wal"),
        (JournalMode::Delete, "delete"),
        (JournalMode::Truncate, "truncate"),
        (JournalMode::Persist, "persist"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(&dir.path().join("m.db"), mode, 5.0);
        assert_eq!(backend.journal_mode().unwrap(), name);
        assert_eq!(backend.synchronous().unwrap(), 3, "{name}: not EXTRA");
    }
    // A file that exists keeps its mode, and still gets EXTRA.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("python-made.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB)",
    )
    .unwrap();
    drop(conn);
    let backend = SqliteBackend::open(SqliteConfig::new(&path)).unwrap();
    assert_eq!(backend.journal_mode().unwrap(), "delete");
    assert_eq!(backend.synchronous().unwrap(), 3);
    // A file this backend creates is WAL.
    let fresh = SqliteBackend::open(SqliteConfig::new(dir.path().join("new.db"))).unwrap();
    assert_eq!(fresh.journal_mode().unwrap(), "wal");
}

#[test]
fn a_lock_held_longer_than_busy_timeout_fails_the_write_naming_the_setting() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        // 1 s against a lock held for 4 s: a backend that used any default
        // of 5 s or more would get the lock and succeed.
        let backend = open(&path, mode, 1.0);
        let holder = hold_write_lock(&path, Duration::from_secs(4));
        let started = Instant::now();
        let err = backend
            .create_model("t".into(), vec![1].into())
            .expect_err("a write while the lock is held past busy_timeout");
        let waited = started.elapsed();
        holder.join().unwrap();
        assert_eq!(err.kind, ErrorKind::Storage, "{mode:?}: {err}");
        assert!(
            err.message.contains("busy_timeout = 1 s"),
            "{mode:?}: the error does not name the setting: {err}"
        );
        // It did wait (about the timeout), rather than failing at once.
        assert!(
            waited >= Duration::from_millis(900),
            "{mode:?}: failed after {waited:?}, before busy_timeout = 1 s had passed"
        );
        assert!(backend.list_models().unwrap().is_empty(), "{mode:?}");
        // The lock is gone: the next write goes through.
        backend.create_model("t".into(), vec![2].into()).unwrap();
    }
}

#[test]
fn a_lock_held_shorter_than_busy_timeout_is_waited_for() {
    for mode in MODES {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let backend = open(&path, mode, 20.0);
        let holder = hold_write_lock(&path, Duration::from_millis(700));
        let model = backend
            .create_model("t".into(), vec![7; 100].into())
            .unwrap_or_else(|err| panic!("{mode:?}: the write did not wait for the lock: {err}"));
        holder.join().unwrap();
        assert_eq!(backend.get_model(model.instance_id).unwrap(), model);
    }
}

/// The page size the file itself records, read with a plain connection.
fn page_size_of(path: &Path) -> u32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap()
}

/// Opens the store `conf` describes, stores a model of 100 kB and closes it.
fn store_one_model(conf: SqliteConfig) {
    let backend = SqliteBackend::open(conf).unwrap();
    backend
        .create_model("t".into(), vec![7; 100_000].into())
        .unwrap();
}

#[test]
fn a_created_file_gets_the_configured_page_size_and_an_existing_one_keeps_its_own() {
    for (journal_mode, page_size) in [
        (None, None),
        (Some(JournalMode::Delete), None),
        (None, Some(4096)),
        (Some(JournalMode::Delete), Some(8192)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conf = SqliteConfig::new(&path);
        conf.journal_mode = journal_mode;
        if let Some(size) = page_size {
            conf.page_size = size;
        }
        store_one_model(conf);
        assert_eq!(
            page_size_of(&path),
            page_size.unwrap_or(65536),
            "{journal_mode:?}, page_size {page_size:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("python-made.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE models (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, instance BLOB)",
        )
        .unwrap();
    let default_size = page_size_of(&path);
    assert_ne!(
        default_size, 65536,
        "the plain connection made 64 KiB pages"
    );
    store_one_model(SqliteConfig::new(&path));
    assert_eq!(
        page_size_of(&path),
        default_size,
        "an existing file's page size changed"
    );
}
