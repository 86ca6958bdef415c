//! Figure 5: create throughput of many threads on one backend against one
//! thread: the same number of durable creates (plugin, fresh database each
//! run) split over 1 or 16 creator threads released together by a barrier,
//! the order rotated per round; creates per second from the wall clock.

use aimm_backend_api::{Backend, RString, RVec};
use anyhow::{bail, Result};
use serde_json::json;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use super::Bench;
use crate::stores;
use aimm_backend_bench::stats::{median, range, ratio};
use aimm_backend_test_support::payload;

impl Bench {
    /// Figure 5: 16 threads creating on one backend vs one thread.
    pub(crate) fn concurrency(&mut self) -> Result<()> {
        let p = self.params.clone();
        let configs = [1usize, p.conc_threads];
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
        for round in 0..p.rounds {
            for k in 0..configs.len() {
                let index = (k + round) % configs.len();
                let threads = configs[index];
                progress!(
                    "concurrency round {}/{}: {} creator(s)",
                    round + 1,
                    p.rounds,
                    threads
                );
                let dir = self.fresh_dir("concurrent-")?;
                let backend = self.plugin.open(&dir.path().join("models.db"), None)?;
                let secs = concurrent_creates(&backend, threads, p.conc_total, p.size, round)?;
                backend.close()?;
                rates[index].push(p.conc_total as f64 / secs);
            }
        }
        println!(
            "## Figure 5: {} durable creates of {} KiB on one backend (plugin), split over N threads\n",
            p.conc_total,
            p.size / 1024
        );
        println!("| creators | creates/s (median) | per-round range |");
        println!("|---|---|---|");
        for (threads, r) in configs.iter().zip(&rates) {
            let (lo, hi) = range(r);
            println!("| {threads} | {:.0} | {lo:.0}-{hi:.0} |", median(r));
        }
        let speedup = median(&rates[1]) / median(&rates[0]);
        println!(
            "\nthroughput, {} creators / 1 creator: {}\n",
            p.conc_threads,
            ratio(speedup)
        );
        self.json.insert(
            "concurrency".into(),
            json!({"total": p.conc_total, "size": p.size, "threads": configs,
                   "creates_per_s": rates, "ratio": speedup}),
        );
        Ok(())
    }
}

/// `total` creates of `size` bytes split over `threads` threads on one
/// backend; returns the wall-clock seconds from a common start.
fn concurrent_creates(
    backend: &Arc<dyn Backend>,
    threads: usize,
    total: usize,
    size: usize,
    round: usize,
) -> Result<f64> {
    let per_thread = total / threads;
    let payloads: Vec<Vec<RVec<u8>>> = (0..threads)
        .map(|t| {
            (0..per_thread)
                .map(|i| {
                    RVec::from(payload::make(
                        size,
                        payload::seed(round, t * per_thread + i, false),
                    ))
                })
                .collect()
        })
        .collect();
    let start = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| -> Result<f64> {
        let handles: Vec<_> = payloads
            .into_iter()
            .map(|batch| {
                let start = &start;
                scope.spawn(move || -> Result<()> {
                    start.wait();
                    for bytes in batch {
                        backend.create_model(RString::from(stores::MODEL_TYPE), bytes)?;
                    }
                    Ok(())
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a creator thread panicked"))??;
        }
        Ok(t0.elapsed().as_secs_f64())
    })?;
    let stored = backend.list_models()?.len();
    if stored != per_thread * threads {
        bail!("{stored} models stored, expected {}", per_thread * threads);
    }
    Ok(elapsed)
}
