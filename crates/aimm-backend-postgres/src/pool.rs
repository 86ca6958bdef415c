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
use aimm_backend_api::{BackendError, ErrorKind, Result};
use postgres::Client;
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
    idle: Vec<(Client, Instant)>,
    /// Connections open, idle or lent.
    open: usize,
    closed: bool,
}

impl Pool {
    /// A pool of at most `capacity` connections, starting with `first`.
    pub(crate) fn new(connector: SharedConnector, capacity: usize, first: Client) -> Pool {
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
    pub(crate) fn with<T>(&self, call: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let mut client = self.take()?;
        let outcome = call(&mut client);
        self.give_back(client);
        outcome
    }

    fn take(&self) -> Result<Client> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(BackendError::new(
                    ErrorKind::Unavailable,
                    "the PostgreSQL backend is closed",
                ));
            }
            if let Some((mut client, since)) = state.idle.pop() {
                if since.elapsed() < CHECK_AFTER {
                    return Ok(client);
                }
                drop(state);
                if client.is_valid(CHECK_TIMEOUT).is_ok() {
                    return Ok(client);
                }
                drop(client);
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

    fn give_back(&self, client: Client) {
        let mut state = self.lock();
        if client.is_closed() || state.closed {
            state.open -= 1;
        } else {
            state.idle.push((client, Instant::now()));
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
