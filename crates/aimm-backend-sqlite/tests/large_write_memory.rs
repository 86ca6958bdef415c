//! What writing and reading a large model costs in memory, as the crate
//! docs promise it: a write of up to 256 MiB holds the model's pages in
//! SQLite's page cache until its commit (one copy), a larger one only the
//! page cache's usual 2 MiB; a read allocates only the result. A host
//! keeping models of a few GiB depends on it. Measured as the growth of
//! this process's peak resident set (`VmHWM`, reset through
//! `/proc/self/clear_refs`) while one call runs. Alone in its test binary,
//! because the peak covers every thread of the process.
//!
//! Bound to one statement, a 64 MiB model costs SQLite two copies (the
//! bound value and the record it builds) besides its pages: 128 MiB or
//! more above the model.

use aimm_backend_api::{Backend, Model};
use aimm_backend_sqlite::{SqliteBackend, SqliteConfig};

const SIZE: usize = 64 << 20;

/// What a call may add to the peak besides what it must hold: page caches
/// and buffers, far below one copy of the model.
const SLACK: u64 = 16 << 20;

/// Above the bytes a write keeps its pages in memory for.
const SPILLED: usize = (256 << 20) + (16 << 20);

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// How far above the resident set at its start the peak rose while `f` ran.
fn peak_growth_of<T>(f: impl FnOnce() -> T) -> (u64, T) {
    // "5" resets the peak (VmHWM) to the current resident set.
    std::fs::write("/proc/self/clear_refs", "5")
        .expect("resetting the peak resident set through /proc/self/clear_refs");
    let start = status_kib("VmRSS:");
    let result = f();
    let peak = status_kib("VmHWM:");
    (peak.saturating_sub(start) << 10, result)
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

fn assert_within(what: &str, growth: u64, bound: u64) {
    eprintln!("{what}: peak resident set +{} KiB", growth >> 10);
    assert!(
        growth <= bound,
        "{what}: the peak resident set grew by {} MiB, expected at most {} MiB",
        growth >> 20,
        bound >> 20
    );
}

#[test]
fn large_models_are_written_with_at_most_their_pages_and_read_without_a_second_copy() {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(SqliteConfig::new(dir.path().join("m.db"))).unwrap();
    // Warm up the connection, its caches and the group commit thread.
    let small = backend
        .create_model("t".into(), vec![1; 100].into())
        .unwrap();
    backend.get_model(small.instance_id).unwrap();

    // One copy of the model's pages, until the commit.
    let pages = SIZE as u64 + SLACK;
    let bytes = pattern(1, SIZE);
    let (growth, created) =
        peak_growth_of(|| backend.create_model("t".into(), bytes.into()).unwrap());
    assert_within("a 64 MiB create", growth, pages);
    let id = created.instance_id;
    drop(created);

    let changed = Model::new(id, "t", pattern(2, SIZE));
    let (growth, _) = peak_growth_of(|| backend.update_model(changed).unwrap());
    assert_within("a 64 MiB update of the same length", growth, pages);

    let resized = Model::new(id, "t", pattern(3, SIZE + 4096));
    let (growth, _) = peak_growth_of(|| backend.update_model(resized).unwrap());
    assert_within("a 64 MiB update to another length", growth, pages);

    let imported = Model::new(id + 1, "t", pattern(4, SIZE));
    let (growth, _) = peak_growth_of(|| backend.import_model(imported).unwrap());
    assert_within("a 64 MiB import", growth, pages);

    let (growth, read) = peak_growth_of(|| backend.get_model(id).unwrap());
    assert_within(
        "reading a 64 MiB model",
        growth,
        (SIZE + 4096) as u64 + SLACK,
    );
    assert_eq!(read.instance.as_slice(), pattern(3, SIZE + 4096));

    // Above 256 MiB the pages spill as they are written.
    drop(read);
    spilled_write_holds_no_copy_of_its_pages(&backend);
}

/// The same backend, so the same warmed caches; in the same test, so that
/// no other test's memory is in the peak.
fn spilled_write_holds_no_copy_of_its_pages(backend: &SqliteBackend) {
    let bytes = pattern(5, SPILLED);
    let (growth, created) =
        peak_growth_of(|| backend.create_model("t".into(), bytes.into()).unwrap());
    assert_within("a 272 MiB create", growth, SLACK);
    assert_eq!(created.instance.len(), SPILLED);
}
