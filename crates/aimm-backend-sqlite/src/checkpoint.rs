//! WAL checkpoints off the write path.
//!
//! In WAL mode every committed page is written twice: to the WAL by the
//! commit, and to the database by a later checkpoint. SQLite's automatic
//! checkpoint runs inside the committing call, so each write that crosses its
//! threshold (4 MiB of WAL) is acknowledged only after its model has been
//! written a second time: a 16 MiB create paid for two copies before it
//! returned. Here the writer connection never checkpoints on its own; a
//! thread of the backend does, once no write has been committed for
//! [`IDLE`] (longer after a large one: [`IDLE_PER_GIB`]), or at once when
//! the WAL has grown past [`MAX_PENDING_BYTES`]
//! (so a writer that never pauses still bounds the WAL). A checkpoint holds
//! the writer connection, exactly as the automatic one did: a write that
//! arrives meanwhile waits for it, and none already acknowledged does.
//!
//! Durability does not change: a commit is synced in the WAL before it is
//! acknowledged, and a checkpoint copies only what is already durable there.

use rusqlite::Connection;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer must have been idle before the WAL is checkpointed...
pub(crate) const IDLE: Duration = Duration::from_millis(100);

/// ...plus this much per GiB of the last commit: a host that has just
/// written a large model takes time in proportion to hand over the next one
/// (serializing it, copying it across), and a checkpoint started in that
/// pause makes the next write wait for it (measured: two 256 MiB creates
/// through the Python interface had one run in between at 100 ms).
pub(crate) const IDLE_PER_GIB: Duration = Duration::from_secs(1);

/// Bytes committed since the last complete checkpoint from which one runs
/// at once, idle or not.
pub(crate) const MAX_PENDING_BYTES: u64 = 1 << 30;

/// What the checkpoint thread knows of the writes.
#[derive(Debug, Default)]
struct State {
    /// Bytes committed since the last complete checkpoint (about what the
    /// WAL holds that the database does not).
    pending_bytes: u64,
    /// When the last commit ended.
    last_commit: Option<Instant>,
    /// The model bytes of the last commit.
    last_bytes: u64,
    /// The backend is going away.
    stop: bool,
    /// How often the thread has woken to checkpoint (it sleeps otherwise).
    wakeups: u64,
}

impl State {
    /// When the next checkpoint is due, if one is.
    fn due(&self) -> Option<Instant> {
        if self.pending_bytes == 0 {
            return None;
        }
        if self.pending_bytes >= MAX_PENDING_BYTES {
            return Some(Instant::now());
        }
        Some(
            self.last_commit
                .map_or_else(Instant::now, |at| at + self.idle()),
        )
    }

    /// How long the writer must be idle after the last commit.
    fn idle(&self) -> Duration {
        IDLE + IDLE_PER_GIB.mul_f64(self.last_bytes as f64 / f64::from(1u32 << 30))
    }
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkpoint thread of one backend's WAL-mode writer connection.
/// Dropping it stops the thread and waits for it.
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Turns off `writer`'s automatic checkpoints and starts the thread that
    /// takes them over. `what` names the file in log lines. If the thread
    /// cannot start, the connection keeps checkpointing on its own.
    pub(crate) fn start(writer: Arc<Mutex<Connection>>, what: String) -> Option<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let thread_writer = writer.clone();
        let thread = std::thread::Builder::new()
            .name("aimm-sqlite-checkpoint".into())
            .spawn(move || run(&thread_shared, &thread_writer, &what));
        let thread = match thread {
            Ok(thread) => thread,
            Err(err) => {
                log::warn!("no checkpoint thread ({err}): checkpoints stay in the commits");
                return None;
            }
        };
        let checkpointer = Checkpointer {
            shared,
            thread: Some(thread),
        };
        let off = lock(&writer).pragma_update(None, "wal_autocheckpoint", 0i64);
        if let Err(err) = off {
            log::warn!("cannot turn off automatic checkpoints ({err}): they stay in the commits");
        }
        Some(checkpointer)
    }

    /// Tells the thread that a commit of about `bytes` bytes has just ended.
    /// Called with the writer connection held, so the thread, which checks
    /// again once it holds the connection, never misses a commit.
    pub(crate) fn committed(&self, bytes: u64) {
        let mut state = self.shared.lock();
        state.pending_bytes = state.pending_bytes.saturating_add(bytes.max(1));
        state.last_commit = Some(Instant::now());
        state.last_bytes = bytes;
        drop(state);
        self.shared.wake.notify_one();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(writer: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    writer.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The thread: waits until a checkpoint is due, then runs it while holding
/// the writer connection.
fn run(shared: &Shared, writer: &Mutex<Connection>, what: &str) {
    loop {
        if !wait_until_due(shared) {
            return;
        }
        shared.lock().wakeups += 1;
        let conn = lock(writer);
        // A commit may have ended while this thread waited for the
        // connection: then the writer is not idle after all.
        let state = shared.lock();
        if state.stop {
            return;
        }
        if state.due().is_none_or(|due| due > Instant::now()) {
            continue;
        }
        let pending = state.pending_bytes;
        drop(state);
        let outcome = checkpoint(&conn);
        drop(conn);
        let mut state = shared.lock();
        match outcome {
            Ok(true) => state.pending_bytes -= pending.min(state.pending_bytes),
            Ok(false) => {
                // Readers still use older frames: try again after a pause.
                state.last_commit = Some(Instant::now());
            }
            Err(err) => {
                log::warn!("checkpointing the WAL of {what}: {err}");
                state.last_commit = Some(Instant::now());
            }
        }
    }
}

/// Waits until a checkpoint is due; false once the backend is going away.
fn wait_until_due(shared: &Shared) -> bool {
    let mut state = shared.lock();
    loop {
        if state.stop {
            return false;
        }
        let now = Instant::now();
        state = match state.due() {
            None => shared
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(due) if due <= now => return true,
            Some(due) => {
                shared
                    .wake
                    .wait_timeout(state, due - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

/// Copies what the WAL holds into the database without waiting for anyone
/// (`PASSIVE`); true if every frame was copied.
fn checkpoint(conn: &Connection) -> rusqlite::Result<bool> {
    let (log, copied): (i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(1)?, row.get(2)?))
        })?;
    Ok(log == copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_due_without_pending_bytes() {
        assert_eq!(State::default().due(), None);
    }

    #[test]
    fn a_checkpoint_is_due_once_the_writer_has_been_idle() {
        let at = Instant::now();
        let state = State {
            pending_bytes: 1,
            last_commit: Some(at),
            ..State::default()
        };
        assert_eq!(state.due(), Some(at + IDLE));
    }

    #[test]
    fn after_a_large_commit_the_writer_is_given_longer() {
        let at = Instant::now();
        let state = State {
            pending_bytes: 1,
            last_commit: Some(at),
            last_bytes: 256 << 20,
            ..State::default()
        };
        assert_eq!(state.due(), Some(at + IDLE + IDLE_PER_GIB / 4));
    }

    #[test]
    fn a_full_wal_is_checkpointed_at_once() {
        let state = State {
            pending_bytes: MAX_PENDING_BYTES,
            last_commit: Some(Instant::now() + Duration::from_secs(60)),
            ..State::default()
        };
        assert!(state.due().unwrap() <= Instant::now());
        let below = State {
            pending_bytes: MAX_PENDING_BYTES - 1,
            ..state
        };
        assert!(below.due().unwrap() > Instant::now());
    }

    /// A writer connection in WAL mode on a fresh file, and its directory.
    fn wal_writer() -> (tempfile::TempDir, Arc<Mutex<Connection>>) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("m.db")).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = wal", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        (dir, Arc::new(Mutex::new(conn)))
    }

    fn state_of(checkpointer: &Checkpointer) -> (u64, u64) {
        let state = checkpointer.shared.lock();
        (state.pending_bytes, state.wakeups)
    }

    #[test]
    fn the_thread_sleeps_until_a_checkpoint_is_due_and_runs_it_once() {
        let (_dir, writer) = wal_writer();
        let checkpointer = Checkpointer::start(writer.clone(), "test".into()).unwrap();
        std::thread::sleep(IDLE * 3);
        assert_eq!(state_of(&checkpointer), (0, 0), "woke with nothing to do");

        writer
            .lock()
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        checkpointer.committed(100);
        let deadline = Instant::now() + Duration::from_secs(10);
        while state_of(&checkpointer).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "never checkpointed: {:?}",
                state_of(&checkpointer)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(IDLE * 3);
        assert_eq!(
            state_of(&checkpointer),
            (0, 1),
            "one wake for one due checkpoint, then asleep"
        );
        let (log, copied): (i64, i64) = writer
            .lock()
            .unwrap()
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                Ok((row.get(1)?, row.get(2)?))
            })
            .unwrap();
        assert_eq!(log, copied, "every frame was copied");
    }

    #[test]
    fn the_writer_no_longer_checkpoints_on_its_own() {
        let (_dir, writer) = wal_writer();
        let _checkpointer = Checkpointer::start(writer.clone(), "test".into()).unwrap();
        let pages: i64 = writer
            .lock()
            .unwrap()
            .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
            .unwrap();
        assert_eq!(pages, 0);
    }

    #[test]
    fn dropping_it_stops_the_thread_and_lets_go_of_the_connection() {
        let (_dir, writer) = wal_writer();
        let checkpointer = Checkpointer::start(writer.clone(), "test".into()).unwrap();
        assert_eq!(Arc::strong_count(&writer), 2);
        drop(checkpointer);
        assert_eq!(Arc::strong_count(&writer), 1, "the thread still holds it");
    }
}
