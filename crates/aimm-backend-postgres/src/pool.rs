//! The connections calls run on: at most `connections` open at once, made
//! when needed, kept while they work, dropped when they fail.
//!
//! A connection that sat idle for a while is checked (an empty query)
//! before it is lent: the server may have restarted meanwhile, and a call
//! must not fail on a connection that died with the old server when a new
//! one would work.
//!
//! Concurrent writers each commit on their own connection; the server
//! flushes the WAL once for the commits that arrive together (its own group
//! commit), so no batching is needed here.

use crate::connect::SharedConnector;
use crate::session::Session;
use aimm_backend_api::{BackendError, ErrorKind, Result};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Idle longer than this, a connection is checked before it is lent; one
/// used more recently is trusted (the check costs a round trip).
const CHECK_AFTER: Duration = Duration::from_secs(1);

/// How long the check waits for the server's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A bounded set of connections to one server.
pub(crate) struct Pool {
    connector: SharedConnector,
    capacity: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    /// Each with when it was given back.
    idle: Vec<(Session, Instant)>,
    /// Connections open, idle or lent.
    open: usize,
    closed: bool,
}

impl Pool {
    /// A pool of at most `capacity` connections, starting with `first`.
    pub(crate) fn new(connector: SharedConnector, capacity: usize, first: Session) -> Pool {
        Pool {
            connector,
            capacity,
            state: Mutex::new(State {
                idle: vec![(first, Instant::now())],
                open: 1,
                closed: false,
            }),
            returned: Condvar::new(),
        }
    }

    /// Runs `call` on a connection. A connection the call leaves closed
    /// (the server went away) is dropped, not kept; the next call connects
    /// anew, and fails at once as unavailable while the server is down.
    pub(crate) fn with<T>(&self, call: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let mut lent = Lent {
            pool: self,
            session: Some(self.take()?),
        };
        call(lent.session.as_mut().expect("lent until dropped"))
    }

    fn take(&self) -> Result<Session> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(BackendError::new(
                    ErrorKind::Unavailable,
                    "the PostgreSQL backend is closed",
                ));
            }
            if let Some((mut session, since)) = state.idle.pop() {
                if since.elapsed() < CHECK_AFTER {
                    return Ok(session);
                }
                drop(state);
                if session.answers_within(CHECK_TIMEOUT) {
                    return Ok(session);
                }
                drop(session);
                state = self.lock();
                state.open -= 1;
                continue;
            }
            if state.open < self.capacity {
                state.open += 1;
                drop(state);
                return self.connector.connect().inspect_err(|_| {
                    self.lock().open -= 1;
                    self.returned.notify_one();
                });
            }
            state = self
                .returned
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Keeps `session` for the next call, unless it is closed, the pool is,
    /// or `discard` says the call broke off.
    fn give_back(&self, session: Session, discard: bool) {
        let mut state = self.lock();
        if discard || session.is_closed() || state.closed {
            state.open -= 1;
        } else {
            state.idle.push((session, Instant::now()));
        }
        drop(state);
        self.returned.notify_one();
    }

    /// Closes the idle connections; lent ones close when they come back.
    /// Later calls fail.
    pub(crate) fn close(&self) {
        let idle = {
            let mut state = self.lock();
            // `open` is not read again: every later call is refused.
            state.closed = true;
            std::mem::take(&mut state.idle)
        };
        drop(idle);
        self.returned.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection lent to a call, given back when the call ends, also when
/// it panics: a slot lost to a panic would leave later calls waiting for a
/// connection that never comes back.
struct Lent<'a> {
    pool: &'a Pool,
    session: Option<Session>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // A call that panicked may have left a transaction half done on
            // it: that connection is closed, not reused.
            self.pool.give_back(session, std::thread::panicking());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PostgresConfig;
    use crate::connect::Connector;
    use aimm_backend_test_support::{within_for, PostgresServer};
    use std::sync::Arc;

    #[test]
    fn a_call_that_panics_gives_its_connection_up_and_later_calls_get_another() {
        let server = PostgresServer::start();
        let conf = PostgresConfig::from_json(&server.backend_section("panics")).unwrap();
        let connector = Arc::new(Connector::new(&conf).unwrap());
        let first = connector.connect().unwrap();
        let pool = Arc::new(Pool::new(connector, 1, first));
        // A lost slot shows as a call that waits for ever: every call runs
        // under a deadline.
        let calls = pool.clone();
        let name = within_for(
            "calls that panic, then one that does not",
            Duration::from_secs(20),
            move || {
                for _ in 0..3 {
                    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        calls.with(|client| -> Result<()> {
                            client
                                .batch_execute("BEGIN; SET LOCAL application_name = 'broken off'")
                                .unwrap();
                            panic!("a call broke off");
                        })
                    }));
                    assert!(panicked.is_err());
                }
                calls.with(|client| {
                    let row = client
                        .query_one("SELECT current_setting('application_name')", &[])
                        .unwrap();
                    Ok(row.get::<_, String>(0))
                })
            },
        );
        assert_eq!(
            name.unwrap(),
            "aimm-backend-postgres",
            "a fresh connection, not one inside the broken-off transaction"
        );
        assert_eq!(pool.lock().open, 1);
    }
}
