//! A client's settings, and why a call failed.

use crate::connection::{ChatterConfig, ChatterError};
use crate::eventer_msg::*;
use crate::sbs::DecodeError;
use std::time::Duration;

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The Chatter connection's settings.
    pub chatter: ChatterConfig,
    /// How long connecting may take, the server's answer to our init
    /// message included.
    pub connect_timeout: Duration,
    /// How long the server may stay silent while an answer is due. Silence
    /// counts from the last progress (see [`Activity`](crate::connection::Activity)), so a transfer
    /// that keeps moving never times out.
    pub idle_timeout: Duration,
    /// Added to `idle_timeout` for each MiB of a request: the server reads
    /// all of it, and to answer a registration encodes it again, before it
    /// sends a byte. (hat-event-server 0.9.44 stayed silent for 45 s after
    /// a registration of 680 MB: 66 ms per MiB.)
    pub idle_per_mib: Duration,
    /// How long the server may take to start answering a query: it builds
    /// the whole answer before it sends a byte, and the answer's size
    /// depends on what the server holds, not on the request. (hat-event
    /// 0.9.44 stayed silent for 67 s before answering a latest-query over
    /// three models of 512 MiB: 44 ms per MiB of model.) Once the answer
    /// has started, [`ClientConfig::idle_timeout`] applies again. Never
    /// shorter than the request's own patience.
    pub query_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            chatter: ChatterConfig::default(),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            idle_per_mib: Duration::from_millis(100),
            query_timeout: Duration::from_secs(600),
        }
    }
}

/// What went wrong talking to the event server.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The transport failed or closed.
    #[error(transparent)]
    Chatter(#[from] ChatterError),
    /// A message could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The server refused the connection (`MsgInitRes.error`).
    #[error("the event server refused the client: {0}")]
    Refused(String),
    /// The server answered `MsgRegisterRes.failure`.
    #[error("the event server did not register the events")]
    RegisterFailed,
    /// The server reported a status change while a fenced registration
    /// was in flight (see [`Client::register_fenced`](super::Client::register_fenced)): it may or may not
    /// have registered the events.
    #[error(
        "the event server's status changed to {0:?} while the events were on their way; \
         they may or may not be registered"
    )]
    StatusChanged(Status),
    /// No progress in time.
    #[error("no answer from the event server: nothing came for {0:.1?} ({1})")]
    Timeout(Duration, &'static str),
    /// The server sent something the protocol does not allow here.
    #[error("unexpected message from the event server: {0}")]
    Protocol(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatter::FrameError;
    use std::error::Error;

    /// Whether some error of `err`'s chain repeats its source's text, which
    /// a reporter printing the chain (anyhow's `{:#}`) would say twice.
    fn repeats_a_cause(err: &dyn Error) -> Option<String> {
        let mut current = Some(err);
        while let Some(err) = current {
            let source = err.source()?;
            if err.to_string().contains(&source.to_string()) {
                return Some(format!("{err} repeats {source}"));
            }
            current = Some(source);
        }
        None
    }

    #[test]
    fn errors_say_each_cause_once() {
        let decode = DecodeError {
            offset: 7,
            problem: "an Integer where a String is due".into(),
        };
        let errors: Vec<Box<dyn Error>> = vec![
            Box::new(ClientError::from(decode.clone())),
            Box::new(FrameError::from(decode.clone())),
            Box::new(ClientError::from(ChatterError::from(FrameError::from(
                decode,
            )))),
            Box::new(ClientError::from(ChatterError::Io("reset by peer".into()))),
        ];
        for err in errors {
            assert_eq!(repeats_a_cause(err.as_ref()), None);
            // And the cause is still said.
            assert!(
                err.to_string().contains("reset by peer")
                    || err.to_string().contains("an Integer where a String is due"),
                "{err}"
            );
        }
    }
}
