//! [`Activity`]: when a connection last made progress, and whether an
//! answer is due on it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// When a connection last made progress: a piece of a large frame read or
/// written, or a whole message other than a ping or pong received. Request
/// timeouts count silence from here, so a long transfer that keeps moving
/// never times out, while pings answered by a peer that answers nothing
/// else do not keep a request alive.
#[derive(Debug, Clone)]
pub struct Activity(Arc<ActivityInner>);

#[derive(Debug)]
struct ActivityInner {
    start: Instant,
    /// Milliseconds from `start` to the last progress.
    last: AtomicU64,
    awaiting: AtomicUsize,
}

impl Activity {
    pub(super) fn new() -> Self {
        Activity(Arc::new(ActivityInner {
            start: Instant::now(),
            last: AtomicU64::new(0),
            awaiting: AtomicUsize::new(0),
        }))
    }

    /// Notes progress now.
    pub fn mark(&self) {
        let elapsed = self.0.start.elapsed().as_millis() as u64;
        self.0.last.fetch_max(elapsed, Ordering::Relaxed);
    }

    /// When progress was last noted (the connection's start, if never).
    pub fn last(&self) -> Instant {
        self.0.start + Duration::from_millis(self.0.last.load(Ordering::Relaxed))
    }

    /// Marks an answer as due until the guard is dropped. Meanwhile an
    /// unanswered ping does not close the connection: a peer busy making
    /// a large answer cannot answer pings, and the waiter's own timeout,
    /// counted from [`Activity::last`], decides.
    pub fn awaiting(&self) -> Awaiting {
        self.0.awaiting.fetch_add(1, Ordering::SeqCst);
        Awaiting(self.clone())
    }

    pub(super) fn is_awaited(&self) -> bool {
        self.0.awaiting.load(Ordering::SeqCst) > 0
    }
}

/// An answer due on a connection; see [`Activity::awaiting`].
#[derive(Debug)]
pub struct Awaiting(Activity);

impl Drop for Awaiting {
    fn drop(&mut self) {
        (self.0).0.awaiting.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bodies up to this size (pings and pongs are far smaller) count as
/// progress only once whole, as a message the peer meant to send.
pub(super) const SMALL_FRAME: usize = 1024;
