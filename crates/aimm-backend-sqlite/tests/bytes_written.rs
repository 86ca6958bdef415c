//! What an acknowledged write costs in bytes written, counted by the kernel
//! (`write_bytes` of `/proc/thread-self/io` for the writing thread, of
//! `/proc/self/io` for the whole process): about one copy of the model. A
//! WAL commit writes the model once; the checkpoint that writes it into the
//! database runs on the backend's own thread once the writer is idle, so no
//! acknowledged write waits for that second copy. An unchanged update
//! writes nothing.
//!
//! Alone in its test binary: the process counter covers every thread.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};
use std::path::Path;
use std::time::{Duration, Instant};

/// Model sizes: below, at and above the size up to which a write keeps its
/// pages in memory until the commit.
const SIZES: [usize; 3] = [2 << 20, 16 << 20, 64 << 20];

/// At most this many bytes written per byte of model, from 2 MiB up.
const BOUND: f64 = 1.2;

fn write_bytes(io: &str) -> u64 {
    let io = std::fs::read_to_string(io).unwrap_or_else(|err| panic!("{io}: {err}"));
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in the io file")
}

/// Bytes this thread caused to be written while `f` ran (every commit is
/// synced, so they reach the counter before the call returns).
fn written_by<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = write_bytes("/proc/thread-self/io");
    let result = f();
    (write_bytes("/proc/thread-self/io") - before, result)
}

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed ^ (i >> 12)) as u8)
        .collect()
}

fn assert_about_once(what: &str, written: u64, size: usize) {
    let ratio = written as f64 / size as f64;
    eprintln!("{what}: {written} bytes written ({ratio:.3}x)");
    assert!(
        ratio >= 1.0,
        "{what} wrote only {written} bytes: is the counter working?"
    );
    assert!(
        ratio <= BOUND,
        "{what} wrote {written} bytes, {ratio:.2}x the model; expected at most {BOUND}x"
    );
}

/// Waits (at most 20 s) until the database file itself holds `bytes`.
fn wait_for_checkpoint(db: &Path, bytes: u64) -> Duration {
    let start = Instant::now();
    loop {
        let len = std::fs::metadata(db).unwrap().len();
        if len >= bytes {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "after 20 s idle the database file holds {len} bytes, expected {bytes} or more: \
             the WAL was never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn writes_of(size: usize) {
    // On the disk the tests build on, not a tmpfs, where nothing is counted.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let db = dir.path().join("m.db");
    let backend = SqliteBackend::open(SqliteConfig::new(&db)).unwrap();
    let models: Vec<Vec<u8>> = (0..3).map(|seed| pattern(seed, size)).collect();
    let changed = pattern(7, size);
    let relengthed = pattern(8, size + 4096);
    // What the whole process writes, less what this thread's writes did:
    // what the checkpoint thread wrote (which may start during the writes
    // below, whenever one pauses for 100 ms).
    let process_before = write_bytes("/proc/self/io");
    let thread_before = write_bytes("/proc/thread-self/io");

    let mut ids = Vec::new();
    for (i, bytes) in models.iter().enumerate() {
        let (written, model) = written_by(|| {
            backend
                .create_model("t".into(), bytes.clone().into())
                .unwrap()
        });
        assert_about_once(&format!("create {i} of {size} bytes"), written, size);
        ids.push(model.instance_id);
    }
    // Creates alone, with nothing after them, are checkpointed too.
    wait_for_checkpoint(&db, 3 * size as u64);
    let update = |bytes: &[u8]| {
        written_by(|| {
            backend
                .update_model(Model::new(ids[0], "t", bytes.to_vec()))
                .unwrap()
        })
        .0
    };
    let unchanged = update(&models[0]);
    assert!(
        unchanged < 64 << 10,
        "an unchanged {size}-byte update wrote {unchanged} bytes"
    );
    assert_about_once(
        &format!("changed update of {size} bytes"),
        update(&changed),
        size,
    );
    assert_about_once(
        &format!("update of {size} bytes to another length"),
        update(&relengthed),
        size + 4096,
    );

    // The models reach the database file itself once the writer is idle.
    let live = (2 * size + size + 4096) as u64;
    let took = wait_for_checkpoint(&db, live);
    let checkpointed = (write_bytes("/proc/self/io") - process_before)
        - (write_bytes("/proc/thread-self/io") - thread_before);
    eprintln!("{size} bytes: checkpointed after {took:?} idle, {checkpointed} bytes written");
    assert!(
        checkpointed >= live,
        "the checkpoint wrote {checkpointed} bytes, less than the {live} the models hold"
    );
    let reopened = backend.get_model(ids[0]).unwrap();
    assert_eq!(reopened.instance.as_slice(), relengthed.as_slice());

    // Closing and dropping the backend stops its checkpoint thread and
    // closes the file: the last connection to go checkpoints the WAL and
    // removes it.
    backend.close().unwrap();
    drop(backend);
    let mut wal = db.into_os_string();
    wal.push("-wal");
    assert!(
        !Path::new(&wal).exists(),
        "the WAL outlived the backend: its connection was never closed"
    );
}

#[test]
fn an_acknowledged_write_writes_its_model_about_once() {
    for size in SIZES {
        writes_of(size);
    }
}
