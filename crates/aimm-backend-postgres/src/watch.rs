//! Reporting changes other hosts commit.
//!
//! While a listener is registered, a thread holds a connection of its own
//! that `LISTEN`s on the store's channel. A notification only wakes it: it
//! then catches up from the table (see the crate docs for why nothing is
//! missed), and it also catches up after every (re)connect and every
//! [`CATCH_UP_EVERY`] without one. Each row's `changed_by` (the writing
//! transaction's id) tells a change from one already reported: this
//! backend's own writes record theirs before they commit, so they are
//! reported once, by the write.

use crate::connect::SharedConnector;
use crate::read::{read_model, ReadError};
use crate::session::{DbError, Session};
use crate::sql::Tables;
use aimm_backend_api::ListenerRegistry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest time between two catch-ups (a notification may be lost with
/// the connection it was sent to).
const CATCH_UP_EVERY: Duration = Duration::from_secs(5);
/// How long a wait for notifications lasts before the stop flag is read.
const TICK: Duration = Duration::from_millis(200);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How long registering the first listener waits for the watcher to learn
/// what the store holds.
const READY_WAIT: Duration = Duration::from_secs(10);

/// The transaction id that last wrote each model, as far as this backend
/// knows: its own writes and what the watcher has reported.
pub(crate) type Seen = Arc<Mutex<HashMap<i64, Stamp>>>;

/// Which write of a model a row holds: its `version` and the transaction
/// (`changed_by`) that wrote it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The model's `version` column.
    pub(crate) version: i64,
    /// Its `changed_by` transaction id.
    pub(crate) by: u64,
}

/// Whether a row stamped `row` is a write not known yet. A row older than
/// the known write is not: a catch-up whose snapshot predates this
/// backend's own commit still reads the row before it, and must neither
/// report it nor forget the newer write. A row of the same version by
/// another transaction is: a write of ours recorded before a COMMIT that
/// failed, then another host's write of that version.
fn is_news(known: Option<&Stamp>, row: Stamp) -> bool {
    match known {
        None => true,
        Some(known) => {
            row.version > known.version || (row.version == known.version && row.by != known.by)
        }
    }
}

/// The watcher thread, if one runs.
#[derive(Default)]
pub(crate) struct Watch {
    running: Mutex<Option<Running>>,
}

struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// What the thread needs.
pub(crate) struct Watched {
    pub(crate) connector: SharedConnector,
    pub(crate) tables: Tables,
    pub(crate) listeners: Arc<ListenerRegistry>,
    pub(crate) seen: Seen,
}

impl Watch {
    /// Starts the thread unless it runs, and waits (up to [`READY_WAIT`])
    /// until it has learnt what the store holds: a change committed after
    /// this returns is reported. While the server cannot be reached it
    /// returns after the wait; changes committed before the thread first
    /// connects are then taken as already there.
    pub(crate) fn ensure_running(&self, watched: impl FnOnce() -> Watched) {
        let mut running = self.lock();
        if running.is_some() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let watched = watched();
        let (ready, learnt) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("aimm-postgres-watch".into())
            .spawn(move || watch(watched, &flag, &ready))
            .expect("spawning the watcher thread");
        *running = Some(Running { stop, thread });
        drop(running);
        let _ = learnt.recv_timeout(READY_WAIT);
    }

    /// Stops the thread and waits for it: no listener call comes after.
    pub(crate) fn stop(&self) {
        let running = self.lock().take();
        if let Some(running) = running {
            running.stop.store(true, Ordering::SeqCst);
            let _ = running.thread.join();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where the last catch-up left off: the `xmin` of its snapshot.
struct Watermark(Option<u64>);

fn watch(watched: Watched, stop: &AtomicBool, ready: &SyncSender<()>) {
    let mut watermark = Watermark(None);
    let mut backoff = Duration::from_millis(100);
    let mut unreachable = false;
    while !stop.load(Ordering::SeqCst) {
        let mut client = match watched.connector.connect() {
            Ok(client) => client,
            Err(err) => {
                // Once per outage, not at every retry.
                if !std::mem::replace(&mut unreachable, true) {
                    log::warn!("watching for changes: {err}; retrying until it is back");
                }
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        if std::mem::replace(&mut unreachable, false) {
            log::info!(
                "watching for changes on PostgreSQL {} again",
                watched.connector.server()
            );
        }
        backoff = Duration::from_millis(100);
        if let Err(err) = listen_and_follow(&watched, &mut client, &mut watermark, stop, ready) {
            log::warn!(
                "watching for changes on PostgreSQL {}: {err}; reconnecting",
                watched.connector.server()
            );
        }
    }
}

/// LISTENs on `client`, then catches up at every wake-up, until stopped
/// or the connection fails.
fn listen_and_follow(
    watched: &Watched,
    client: &mut Session,
    watermark: &mut Watermark,
    stop: &AtomicBool,
    ready: &SyncSender<()>,
) -> Result<(), DbError> {
    client.batch_execute(&watched.tables.listen())?;
    let mut last = Instant::now();
    catch_up(watched, client, watermark)?;
    // Only the first one is waited for; later ones find the channel full.
    let _ = ready.try_send(());
    while !stop.load(Ordering::SeqCst) {
        let woken = client.wait_for_notification(TICK)?;
        if woken || last.elapsed() >= CATCH_UP_EVERY {
            catch_up(watched, client, watermark)?;
            last = Instant::now();
        }
    }
    Ok(())
}

/// Reports the rows changed by transactions at or after the watermark that
/// were not reported yet, then moves the watermark to this snapshot's
/// `xmin`. The first catch-up only learns what is there.
fn catch_up(
    watched: &Watched,
    client: &mut Session,
    watermark: &mut Watermark,
) -> Result<(), DbError> {
    let mut tx = client.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
    let xmin: String = tx
        .query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[])?
        .get(0);
    let since = watermark.0.unwrap_or(0).to_string();
    let rows = tx.query(
        &format!(
            "SELECT id, changed_by::text, version FROM {} WHERE changed_by >= $1::text::xid8",
            watched.tables.models()
        ),
        &[&since],
    )?;
    let first = watermark.0.is_none();
    let mut changed = Vec::new();
    {
        let mut seen = watched.seen.lock().unwrap_or_else(PoisonError::into_inner);
        for row in &rows {
            let id: i64 = row.get(0);
            let stamp = Stamp {
                version: row.get(2),
                by: row.get::<_, &str>(1).parse().unwrap_or(0),
            };
            if is_news(seen.get(&id), stamp) {
                seen.insert(id, stamp);
                if !first {
                    changed.push(id);
                }
            }
        }
    }
    let mut models = Vec::new();
    for id in changed {
        match read_model(&mut tx, &watched.tables, id) {
            Ok(Some(model)) => models.push(model),
            Ok(None) => {}
            Err(ReadError::Database(err)) => return Err(err),
            Err(unreadable) => log::warn!("not reporting a change: {unreadable}"),
        }
    }
    tx.commit()?;
    watermark.0 = xmin.parse().ok();
    for model in &models {
        watched.listeners.notify(model);
    }
    Ok(())
}

fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) {
    let until = Instant::now() + duration;
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        std::thread::sleep(TICK.min(until - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: i64, by: u64) -> Stamp {
        Stamp { version, by }
    }

    #[test]
    fn only_a_newer_write_or_another_write_of_the_same_version_is_news() {
        assert!(is_news(None, stamp(1, 10)));
        assert!(is_news(Some(&stamp(1, 10)), stamp(2, 12)));
        assert!(
            !is_news(Some(&stamp(2, 12)), stamp(2, 12)),
            "the same write"
        );
        assert!(
            !is_news(Some(&stamp(2, 12)), stamp(1, 10)),
            "an older write"
        );
        assert!(
            is_news(Some(&stamp(2, 12)), stamp(2, 13)),
            "another write of version 2"
        );
    }
}
