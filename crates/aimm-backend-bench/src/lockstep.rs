//! Figures 1-3's workload: every store gets each create, read and update in
//! turn.

use crate::child;
use crate::stores::{OpenStore, Payloads, PhaseTimes};
use aimm_backend_test_support::payload;
use anyhow::{ensure, Result};
use std::path::Path;
use std::time::Instant;

/// Runs the create / get_models / update workload on every store in
/// lockstep: create `i` goes to each store in turn (starting with a different
/// store each round) before create `i + 1`, so slow and fast moments of the
/// disk are shared evenly. Only the calls themselves are timed; each gets a
/// fresh copy of its payload made outside the clock. After the creates (each
/// committed before its call returned), every store's cold get_models is
/// timed in a fresh child process opening the same file (`plugin` is the
/// plugin library), then its warm get_models here. Checks every store's end
/// state. Returns the phase times of each store, in `stores` order.
pub fn run_lockstep(
    stores: &mut [OpenStore],
    plugin: &Path,
    payloads: &Payloads,
    round: usize,
) -> Result<Vec<PhaseTimes>> {
    let n = stores.len();
    let count = payloads.creates.len();
    let mut times = vec![PhaseTimes::default(); n];
    let mut ids = vec![Vec::with_capacity(count); n];
    let order = |step: usize| (0..n).map(move |k| (k + step + round) % n);

    for (i, bytes) in payloads.creates.iter().enumerate() {
        for s in order(i) {
            let copy = bytes.clone();
            let t0 = Instant::now();
            let id = stores[s].store.create(copy)?;
            times[s].create += t0.elapsed().as_secs_f64();
            ids[s].push(id);
        }
    }
    // cold: a fresh process per store; this process's connections stay open
    // (WAL readers, or a shared lock at most with journal_mode=delete)
    for s in order(0) {
        let store = &stores[s];
        times[s].get = child::cold_get(store.kind, &store.db, plugin, count)?;
    }
    // warm: a first call (untimed) leaves its freed memory in this process,
    // which keeps it (automatic trimming is off here), and the timed call
    // reuses it
    for s in order(0) {
        let (_, got) = stores[s].store.timed_get()?;
        ensure!(
            got == count,
            "get_models returned {got} models, expected {count}"
        );
        let (warm, got) = stores[s].store.timed_get()?;
        ensure!(
            got == count,
            "get_models returned {got} models, expected {count}"
        );
        times[s].get_warm = warm;
    }
    for (i, bytes) in payloads.updates.iter().enumerate() {
        for s in order(i) {
            let copy = bytes.clone();
            let t0 = Instant::now();
            stores[s].store.update(ids[s][i], copy)?;
            times[s].update += t0.elapsed().as_secs_f64();
        }
    }
    for (store, ids) in stores.iter_mut().zip(&ids) {
        verify(store.store.get_all()?, ids, &payloads.update_seeds)?;
    }
    Ok(times)
}

/// Checks that the stored models are exactly `ids` with the update payloads.
fn verify(stored: Vec<(i64, Vec<u8>)>, ids: &[i64], seeds: &[u64]) -> Result<()> {
    ensure!(
        stored.len() == ids.len(),
        "{} models stored, expected {}",
        stored.len(),
        ids.len()
    );
    for ((id, bytes), (&want_id, &seed)) in stored.iter().zip(ids.iter().zip(seeds)) {
        ensure!(*id == want_id, "model id {id}, expected {want_id}");
        ensure!(
            payload::matches(bytes, seed),
            "model {id} does not hold the bytes of its last update"
        );
    }
    Ok(())
}
