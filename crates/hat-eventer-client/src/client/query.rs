//! Query answers read as they arrive, one event at a time.

use super::config::ClientError;
use crate::connection::{self, Activity, ChatterError, Rest};
use crate::eventer_msg::*;
use crate::sbs::{Body, ChunkSource, DecodeError, Reader};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// The answer to [`Client::query_streamed`](super::Client::query_streamed), its events still to decode.
pub struct QueryStream {
    pub(super) start: Body,
    pub(super) rest: Option<Rest>,
    pub(super) activity: Activity,
    pub(super) patience: Duration,
    /// The answer is still arriving.
    pub(super) _awaiting: connection::Awaiting,
}

impl QueryStream {
    /// The events, each decoded once its bytes have arrived. Waits for
    /// them on `runtime`, so it must be iterated outside the runtime's
    /// tasks (on a blocking thread); the connection may stay silent for
    /// the request's patience between pieces. After the last event the
    /// end of the answer is checked; the first error ends the iteration.
    pub fn events(self, runtime: tokio::runtime::Handle) -> QueryEvents {
        let failure = Rc::new(RefCell::new(None));
        let owed = self.rest.as_ref().map_or(0, |rest| rest.len);
        let source = RestSource {
            rest: self.rest,
            runtime,
            activity: self.activity,
            patience: self.patience,
            failure: failure.clone(),
            _awaiting: self._awaiting,
        };
        QueryEvents {
            reader: Reader::streaming(self.start, owed, source),
            left: None,
            failure,
            done: false,
        }
    }
}

/// The events of a [`QueryStream`], in the order the server sent them.
pub struct QueryEvents {
    reader: Reader<'static>,
    /// Events not read yet (`None`: the count is not read yet).
    left: Option<usize>,
    /// Why the rest stopped arriving, if it did.
    failure: Rc<RefCell<Option<ClientError>>>,
    done: bool,
}

impl QueryEvents {
    fn step(&mut self) -> Result<Option<Event>, DecodeError> {
        let left = match self.left {
            Some(left) => left,
            None => self.reader.array_len()?,
        };
        if left == 0 {
            self.left = Some(0);
            self.reader.boolean()?; // more_follows: never set for latest
            self.reader.finish()?;
            return Ok(None);
        }
        let event = Event::read(&mut self.reader)?;
        self.left = Some(left - 1);
        Ok(Some(event))
    }
}

impl Iterator for QueryEvents {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(event)) => Some(Ok(event)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(err) => {
                self.done = true;
                let failure = self.failure.borrow_mut().take();
                Some(Err(failure.unwrap_or(ClientError::Decode(err))))
            }
        }
    }
}

/// The pieces of a streamed answer, waited for with the request's
/// patience.
struct RestSource {
    rest: Option<Rest>,
    runtime: tokio::runtime::Handle,
    activity: Activity,
    patience: Duration,
    failure: Rc<RefCell<Option<ClientError>>>,
    _awaiting: connection::Awaiting,
}

impl RestSource {
    async fn next_piece(&mut self) -> Result<Vec<u8>, ClientError> {
        let rest = self.rest.as_mut().ok_or(ChatterError::Closed)?;
        loop {
            let quiet_since = self.activity.last();
            match tokio::time::timeout_at(quiet_since + self.patience, rest.next()).await {
                Ok(Some(piece)) => return Ok(piece?),
                Ok(None) => return Err(ChatterError::Closed.into()),
                Err(_) if self.activity.last() > quiet_since => continue,
                Err(_) => return Err(ClientError::Timeout(self.patience, "query")),
            }
        }
    }
}

impl ChunkSource for RestSource {
    fn next_chunk(&mut self) -> Result<Vec<u8>, String> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.next_piece()).map_err(|err| {
            let why = err.to_string();
            *self.failure.borrow_mut() = Some(err);
            why
        })
    }
}
