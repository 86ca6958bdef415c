//! The tables the benchmark prints: each workload's rounds, and the
//! writer threads.

use crate::bench::{
    run_workload, run_writers, Bench, Phases, Variant, Wal, KIB, MIB, WRITER_CREATES,
};
use aimm_backend_bench::report::StockBench;
use aimm_backend_bench::stats::{median, range};
use aimm_backend_bench::sysinfo;
use aimm_backend_test_support::{venv_python, workspace_root};
use anyhow::Result;
use std::collections::BTreeMap;

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB as f64)
}

/// `median (min-max)` of seconds.
fn spread(values: &[f64]) -> String {
    let (lo, hi) = range(values);
    format!("{:.3} ({:.3}-{:.3})", median(values), lo, hi)
}

pub(crate) fn workload(bench: &Bench, rounds: usize, count: usize, size: usize) -> Result<()> {
    let variants = [
        Variant::Postgres,
        Variant::Floor,
        Variant::Sqlite,
        Variant::Stock,
    ];
    let mut times: BTreeMap<Variant, Vec<Phases>> = BTreeMap::new();
    let mut wal: BTreeMap<Variant, Wal> = BTreeMap::new();
    let mut syncs: BTreeMap<Variant, u64> = BTreeMap::new();
    let stock = StockBench::new(
        venv_python(&workspace_root(), sysinfo::default_allocator)?,
        &workspace_root(),
    );
    for round in 0..rounds {
        for variant in variants {
            let phases = if variant == Variant::Stock {
                let run = stock.run(count, size, bench.scratch.path())?;
                Phases {
                    create: run.create,
                    get: run.get_models,
                    update: run.update,
                    list: f64::NAN,
                }
            } else {
                let before = bench.wal_syncs()?;
                let (phases, phase_wal) = run_workload(bench, variant, count, size, round)?;
                // The backends' connections have closed: their counts are in.
                std::thread::sleep(std::time::Duration::from_millis(300));
                *syncs.entry(variant).or_default() += bench.wal_syncs()? - before;
                wal.insert(variant, phase_wal);
                phases
            };
            times.entry(variant).or_default().push(phases);
        }
    }
    let payload = (count * size) as u64;
    println!(
        "\n### {count} x {} KiB ({} of models), {} rounds: seconds, median (min-max)\n",
        size / KIB,
        mib(payload),
        rounds
    );
    println!("| variant | creates | get_models | updates | list | WAL: creates / updates / get+list | WAL syncs per round |");
    println!("|---|---|---|---|---|---|---|");
    for variant in variants {
        let runs = &times[&variant];
        let col = |f: fn(&Phases) -> f64| spread(&runs.iter().map(f).collect::<Vec<_>>());
        let wal_cell = match (variant, wal.get(&variant)) {
            (Variant::Postgres | Variant::Floor, Some(w)) => format!(
                "{} / {} / {}",
                mib(w.create),
                mib(w.update),
                mib(w.get + w.list)
            ),
            _ => "-".into(),
        };
        let sync_cell = match (variant, syncs.get(&variant)) {
            (Variant::Postgres | Variant::Floor, Some(n)) => (n / rounds as u64).to_string(),
            _ => "-".into(),
        };
        let list = if variant == Variant::Stock {
            "n/a".into()
        } else {
            col(|p| p.list)
        };
        println!(
            "| {} | {} | {} | {} | {} | {wal_cell} | {sync_cell} |",
            variant.label(),
            col(|p| p.create),
            col(|p| p.get),
            col(|p| p.update),
            list
        );
    }
    let ratio = |variant: Variant, f: fn(&Phases) -> f64| {
        let ours: Vec<f64> = times[&Variant::Postgres].iter().map(f).collect();
        let other: Vec<f64> = times[&variant].iter().map(f).collect();
        let ratios: Vec<f64> = ours.iter().zip(&other).map(|(a, b)| a / b).collect();
        format!("{:.2}x", median(&ratios))
    };
    println!("\nOurs on PostgreSQL over (median of the rounds' ratios; under 1 is faster):\n");
    println!("| over | creates | get_models | updates | list |");
    println!("|---|---|---|---|---|");
    for variant in [Variant::Floor, Variant::Sqlite, Variant::Stock] {
        let list = if variant == Variant::Stock {
            "n/a".into()
        } else {
            ratio(variant, |p| p.list)
        };
        println!(
            "| {} | {} | {} | {} | {list} |",
            variant.label(),
            ratio(variant, |p| p.create),
            ratio(variant, |p| p.get),
            ratio(variant, |p| p.update),
        );
    }
    println!(
        "\nFloor of the bytes: {} of models per phase; one commit per create and per update.",
        mib(payload)
    );
    Ok(())
}

pub(crate) fn writers(bench: &Bench, rounds: usize) -> Result<()> {
    let variants = [Variant::Postgres, Variant::Floor, Variant::Sqlite];
    println!(
        "\n### {WRITER_CREATES} creates of 64 KiB over N writer threads, {} rounds: seconds, median (min-max)\n",
        rounds
    );
    println!(
        "| writers | ours, PostgreSQL | floor | ours / floor | WAL (ours / floor) | ours, SQLite |"
    );
    println!("|---|---|---|---|---|---|");
    for writers in [1, 4, 16] {
        let mut secs: BTreeMap<Variant, Vec<f64>> = BTreeMap::new();
        let mut wal: BTreeMap<Variant, u64> = BTreeMap::new();
        for round in 0..rounds {
            for variant in variants {
                let (s, w) = run_writers(bench, variant, writers, round)?;
                secs.entry(variant).or_default().push(s);
                wal.insert(variant, w);
            }
        }
        let ratios: Vec<f64> = secs[&Variant::Postgres]
            .iter()
            .zip(&secs[&Variant::Floor])
            .map(|(a, b)| a / b)
            .collect();
        println!(
            "| {writers} | {} | {} | {:.2}x | {} / {} | {} |",
            spread(&secs[&Variant::Postgres]),
            spread(&secs[&Variant::Floor]),
            median(&ratios),
            mib(wal[&Variant::Postgres]),
            mib(wal[&Variant::Floor]),
            spread(&secs[&Variant::Sqlite]),
        );
    }
    Ok(())
}
