//! A connection's settings, and why it failed or closed.

use crate::chatter::FrameError;
use std::time::Duration;

/// Connection settings.
#[derive(Debug, Clone)]
pub struct ChatterConfig {
    /// Frames announcing a larger body are refused at once. A body is
    /// allocated as its bytes arrive, never ahead of them, so the bound is
    /// not what protects memory; by default it is the most one buffer can
    /// hold, so that no legitimate answer is refused.
    pub max_frame: usize,
    /// Silence after which we ping the peer.
    pub ping_delay: Duration,
    /// Further silence after a ping after which the connection is closed,
    /// unless an answer is due (see [`Activity::awaiting`](super::Activity::awaiting)).
    pub ping_timeout: Duration,
}

impl Default for ChatterConfig {
    fn default() -> Self {
        ChatterConfig {
            max_frame: isize::MAX as usize,
            ping_delay: Duration::from_secs(20),
            ping_timeout: Duration::from_secs(20),
        }
    }
}

/// Why a connection failed or closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatterError {
    /// The socket failed.
    #[error("Chatter I/O: {0}")]
    Io(String),
    /// A frame could not be accepted.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The peer stopped answering.
    #[error("Chatter peer silent for {0:?} after a ping")]
    PingTimeout(Duration),
    /// The connection is closed.
    #[error("Chatter connection closed")]
    Closed,
}

impl From<std::io::Error> for ChatterError {
    fn from(err: std::io::Error) -> Self {
        ChatterError::Io(err.to_string())
    }
}
