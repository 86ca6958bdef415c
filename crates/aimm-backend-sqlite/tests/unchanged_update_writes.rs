//! What an update of a large model costs in bytes written, counted by the
//! kernel for this process (`/proc/self/io` `write_bytes`). Alone in its
//! test binary, because the counter covers every thread of the process.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};

const SIZE: usize = 8 << 20;

fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    io.lines()
        .find_map(|line| line.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("write_bytes in /proc/self/io")
}

/// Bytes this process caused to be written while `f` ran (the file syncs
/// every commit, so they reach the counter before the call returns).
fn written_by(f: impl FnOnce()) -> u64 {
    let before = write_bytes();
    f();
    write_bytes() - before
}

#[test]
fn an_unchanged_large_update_writes_nothing_and_a_changed_one_writes_it_once() {
    // On the disk the tests build on, not a tmpfs, where nothing is counted.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    let mut instance: Vec<u8> = (0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect();
    let id = backend
        .create_model("t".into(), instance.clone().into())
        .unwrap()
        .instance_id;
    let update = |bytes: &[u8]| {
        backend
            .update_model(Model::new(id, "t", bytes.to_vec()))
            .unwrap();
    };
    let unchanged = written_by(|| update(&instance));
    for i in (0..SIZE).step_by(4096) {
        instance[i] ^= 1;
    }
    let changed = written_by(|| update(&instance));
    instance.extend_from_slice(&[5; 4096]);
    let relengthed = written_by(|| update(&instance));
    assert!(
        unchanged < 64 << 10,
        "an unchanged {SIZE}-byte update wrote {unchanged} bytes"
    );
    assert!(
        changed >= SIZE as u64,
        "a changed {SIZE}-byte update wrote only {changed} bytes: is the counter working?"
    );
    // Once into the WAL and once more when the WAL is checkpointed into the
    // file; not a zeroblob first and then the bytes (three times the size).
    assert!(
        changed < SIZE as u64 * 5 / 2,
        "a changed {SIZE}-byte update wrote {changed} bytes"
    );
    // Another length is written as a zeroblob first, then the bytes; the
    // kernel counts the pages the second pass overwrites before they reach
    // the disk once (the write calls to the WAL carry them twice).
    assert!(
        (SIZE as u64..SIZE as u64 * 5 / 2).contains(&relengthed),
        "an update to another length wrote {relengthed} bytes"
    );
}
