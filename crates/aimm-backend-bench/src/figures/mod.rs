//! The figures of the report, one module per figure (figures 1-3 share one
//! workload and so one module), each an `impl Bench` block with the method
//! the driver calls; here is what they share: the sizes of the run
//! ([`Params`]), its context ([`Bench`]), fresh directories, stores filled
//! in bulk, and progress lines on stderr.

use aimm_backend_api::Backend;
use aimm_backend_test_support::payload;
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::stores::{self, Plugin};
use aimm_backend_bench::report::StockBench;

/// Progress, on stderr so stdout stays the report.
macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[bench] {}", format!($($arg)*)) };
}

mod abi_calls;
mod big_model;
mod concurrency;
mod header;
mod list_memory;
mod read_paths;
mod workload;

/// Sizes of one benchmark run.
#[derive(Debug, Clone)]
pub(crate) struct Params {
    rounds: usize,
    count: usize,
    size: usize,
    abi_calls: usize,
    list_count: usize,
    list_sizes: [usize; 2],
    conc_total: usize,
    conc_threads: usize,
    big_size: usize,
}

impl Params {
    /// The sizes of a full run, or of a `quick` one; `rounds`, when given,
    /// replaces the default number of rounds (at least 1).
    pub(crate) fn new(quick: bool, rounds: Option<usize>) -> Params {
        let mut p = if quick {
            Params {
                rounds: 2,
                count: 100,
                size: 64 * 1024,
                abi_calls: 2_000,
                list_count: 1_000,
                list_sizes: [1024, 64 * 1024],
                conc_total: 160,
                conc_threads: 16,
                big_size: 64 << 20,
            }
        } else {
            Params {
                rounds: 5,
                count: 1_000,
                size: 64 * 1024,
                abi_calls: 20_000,
                list_count: 10_000,
                list_sizes: [1024, 64 * 1024],
                conc_total: 1_600,
                conc_threads: 16,
                big_size: 1 << 30,
            }
        };
        if let Some(rounds) = rounds {
            p.rounds = rounds.max(1);
        }
        p
    }
}

/// Everything one run needs: where to put files, what to load, what to run.
pub(crate) struct Bench {
    pub(crate) params: Params,
    pub(crate) base: PathBuf,
    pub(crate) plugin_path: PathBuf,
    pub(crate) plugin: Plugin,
    pub(crate) python: Option<StockBench>,
    pub(crate) repo: PathBuf,
    pub(crate) json: BTreeMap<String, Value>,
}

impl Bench {
    /// A fresh directory for one measurement's files, under the base.
    fn fresh_dir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.base)
            .with_context(|| format!("creating a directory in {}", self.base.display()))
    }
}

/// Creates a store at `db` with our backend (so it has our table and WAL
/// mode), then fills it with `count` models of `size` bytes in one bulk
/// transaction: setup only, not measured.
fn fill_store(db: &Path, count: usize, size: usize) -> Result<()> {
    let backend = stores::open_direct(db)?;
    backend.close()?;
    drop(backend);
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare("INSERT INTO models (type, instance) VALUES (?1, ?2)")?;
        let mut buf = vec![0u8; size];
        for i in 0..count {
            payload::fill_at(&mut buf, i as u64, 0);
            stmt.execute(rusqlite::params![stores::MODEL_TYPE, buf])?;
        }
    }
    tx.commit()?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}
