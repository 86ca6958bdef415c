//! The PostgreSQL backend side by side with its floor, with our SQLite
//! backend and with the stock Python SQLite backend, in one run, on a real
//! PostgreSQL 15 that it starts itself (`scripts/postgres.sh`, a scratch
//! directory on loopback).
//!
//! Workloads (each round, each variant on a fresh store):
//!
//! - `1000 x 64 KiB` and `3 x 64 MiB`: N creates one after another, one
//!   `get_models` (every model, checked byte for byte), N updates with
//!   changed bytes, one `list_models`.
//! - Writers: 1,600 creates of 64 KiB split over 1, 4 and 16 threads.
//!
//! Variants:
//!
//! - `postgres`: our plugin (`libaimm_backend_postgres.so`, loaded as a host
//!   loads it) with as many connections as writers;
//! - `floor`: the statements our backend sends, sent by a bare `postgres`
//!   client (the same crate, one connection per writer, the same SHA-256 of
//!   each model): what PostgreSQL itself costs, with nothing of ours;
//! - `sqlite`: our SQLite plugin, a fresh file in the system's temporary
//!   directory;
//! - `stock`: `aimm.server.backend.sqlite` (aimm 1.2.dev1) through its
//!   Python interface (`tests/python/bench_aimm_sqlite.py`; it has no
//!   `list`).
//!
//! Each run starts after a `CHECKPOINT`. Beside each PostgreSQL figure: the
//! WAL the phase wrote (the server's
//! `pg_current_wal_lsn()` before and after) and, per variant, the WAL syncs
//! (`pg_stat_wal.wal_sync`, read once its connections have closed).
//!
//! ```text
//! cargo build --release --workspace
//! target/release/postgres-bench [--rounds R] [--quick]
//! ```

#![forbid(unsafe_code)]

mod bench;
mod tables;
mod target;

use aimm_backend_bench::sysinfo;
use anyhow::{bail, Context, Result};
use bench::{Bench, KIB, MIB};

struct Args {
    rounds: usize,
    quick: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 3,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--quick" => args.quick = true,
            "--rounds" => {
                let value = it.next().context("--rounds needs a value")?;
                args.rounds = value
                    .parse::<usize>()
                    .with_context(|| format!("--rounds {value}: expected a number"))?
                    .max(1);
            }
            _ => bail!("unknown option {flag}; expected --rounds R or --quick"),
        }
    }
    Ok(args)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let bench = Bench::start()?;
    println!("## PostgreSQL backend benchmark\n");
    println!(
        "- machine: {}, {} cores",
        sysinfo::cpu_model(),
        std::thread::available_parallelism()?.get()
    );
    println!(
        "- server: {} on 127.0.0.1, fsync on, synchronous_commit on, data in {}",
        bench
            .admin
            .lock()
            .unwrap()
            .query_one("SHOW server_version", &[])?
            .get::<_, String>(0),
        bench.server.dir().display()
    );
    println!("- SQLite files in {}", bench.scratch.path().display());
    let workloads: &[(usize, usize)] = if args.quick {
        &[(100, 64 * KIB), (1, 64 * MIB)]
    } else {
        &[(1000, 64 * KIB), (3, 64 * MIB)]
    };
    for &(count, size) in workloads {
        tables::workload(&bench, args.rounds, count, size)?;
    }
    tables::writers(&bench, args.rounds)?;
    Ok(())
}
