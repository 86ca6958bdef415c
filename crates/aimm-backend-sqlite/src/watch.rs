//! Reporting changes that other processes make to the file.
//!
//! SQLite has no change feed across processes, so while at least one
//! listener is registered, a thread polls `PRAGMA data_version` and, when it
//! moves, compares (id, type, size) of every row with what it saw before.
//! New models and models whose type or size changed are reported; an update
//! by another process that keeps both type and size is not seen. Changes this
//! backend makes itself are reported directly, once: writers record them in
//! the shared snapshot under its lock, so the poller does not report them again.

use crate::config::SqliteConfig;
use aimm_backend_api::{InstanceId, ListenerRegistry, Model};
use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the file is checked for other processes' commits.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What the poller last saw of each row: type and size.
pub(crate) type Snapshot = BTreeMap<InstanceId, (String, i64)>;

/// The shared state of the poller.
#[derive(Default)]
pub(crate) struct Watch {
    poller: Mutex<Option<Running>>,
    /// `None` while no poller runs; writers then skip the bookkeeping.
    snapshot: Arc<Mutex<Option<Snapshot>>>,
}

/// A started poller. Each start has its own stop channel, so a poller
/// stopped just before another starts cannot be revived by it.
struct Running {
    /// Never sent on: dropping it wakes the poller, even mid-interval, and
    /// ends it.
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl Watch {
    /// Locks the snapshot; writers hold it across their commit so the
    /// poller never sees a commit whose snapshot entry is not yet written.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the poller unless it runs already.
    pub(crate) fn ensure_running(
        &self,
        conf: &SqliteConfig,
        listeners: &Arc<ListenerRegistry>,
        read: fn(&rusqlite::Connection, InstanceId) -> rusqlite::Result<Option<Model>>,
    ) {
        let mut running = self.poller.lock().unwrap_or_else(PoisonError::into_inner);
        if running.is_some() {
            return;
        }
        let poller = Poller {
            listeners: listeners.clone(),
            snapshot: self.snapshot.clone(),
            read,
        };
        // The first look is taken here, before the listener's registration
        // returns: every commit after that is reported.
        let conn = match crate::open::open_connection(conf, true) {
            Ok(conn) => conn,
            Err(err) => {
                log::error!("SQLite change poller cannot open the file: {err}");
                return;
            }
        };
        let version = poller.first_look(&conn);
        let (stop, stopped) = mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("aimm-sqlite-watch".into())
            .spawn(move || poller.run(conn, version, stopped));
        match spawned {
            Ok(thread) => *running = Some(Running { stop, thread }),
            Err(err) => {
                log::error!("cannot start the SQLite change poller: {err}");
                *self.lock() = None;
            }
        }
    }

    /// Stops the poller and waits for it to end, so that no listener is
    /// called after this returns (unless this is called from the poller's
    /// own listener call, which cannot wait for itself: the poller then ends
    /// after that round).
    pub(crate) fn stop(&self) {
        let running = self
            .poller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Running { stop, thread }) = running else {
            return;
        };
        drop(stop);
        if thread.thread().id() != std::thread::current().id() {
            let _ = thread.join();
        }
        *self.lock() = None;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Poller {
    listeners: Arc<ListenerRegistry>,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
    read: fn(&rusqlite::Connection, InstanceId) -> rusqlite::Result<Option<Model>>,
}

impl Poller {
    fn run(self, conn: rusqlite::Connection, mut version: i64, stop: mpsc::Receiver<()>) {
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(POLL_INTERVAL) {
            match data_version(&conn) {
                Ok(now) if now != version => {
                    version = now;
                    for model in self.changes(&conn) {
                        self.listeners.notify(&model);
                    }
                }
                Ok(_) => {}
                Err(err) => log::warn!("SQLite change poller: {err}"),
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Snapshot>> {
        self.snapshot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the first snapshot and returns the data version it belongs to.
    /// Under the snapshot lock, which this backend's writers hold across
    /// their commits: a write commits either before the scan (and is in it)
    /// or after the snapshot exists (and records itself there), so it is
    /// never reported a second time. The version is read before the scan,
    /// so another process's commit in between is looked at again, not lost.
    fn first_look(&self, conn: &rusqlite::Connection) -> i64 {
        let mut guard = self.lock();
        let version = data_version(conn).unwrap_or(0);
        match scan(conn) {
            Ok(rows) => *guard = Some(rows),
            Err(err) => log::error!("SQLite change poller cannot read the models: {err}"),
        }
        version
    }

    /// Models that are new or changed since the last look.
    fn changes(&self, conn: &rusqlite::Connection) -> Vec<Model> {
        let mut guard = self.lock();
        let known = guard.get_or_insert_with(Snapshot::new);
        let rows = match scan(conn) {
            Ok(rows) => rows,
            Err(err) => {
                log::warn!("SQLite change poller cannot read the models: {err}");
                return Vec::new();
            }
        };
        let changed: Vec<InstanceId> = rows
            .iter()
            .filter(|(id, row)| known.get(id) != Some(row))
            .map(|(id, _)| *id)
            .collect();
        *known = rows;
        drop(guard);
        changed
            .into_iter()
            .filter_map(|id| match (self.read)(conn, id) {
                Ok(model) => model,
                Err(err) => {
                    log::warn!("SQLite change poller cannot read model {id}: {err}");
                    None
                }
            })
            .collect()
    }
}

fn data_version(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA data_version", [], |row| row.get(0))
}

fn scan(conn: &rusqlite::Connection) -> rusqlite::Result<Snapshot> {
    let mut stmt = conn.prepare_cached("SELECT id, type, length(instance) FROM models")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, InstanceId>(0)?,
            (
                row.get::<_, String>(1)?,
                row.get::<_, Option<i64>>(2)?.unwrap_or(0),
            ),
        ))
    })?;
    rows.collect()
}
