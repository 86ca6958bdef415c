//! Answers awaited with a deadline that silence, not size, runs out.

use super::config::ClientError;
use super::message::{check_type, decode_as, Answered, Pending};
use crate::chatter::Data;
use crate::connection::{self, ChatterError, Conversation, Sender};
use crate::eventer_msg::*;
use std::time::Duration;
use tokio::sync::oneshot;

/// An answer due from the server, of type `Res`.
pub(super) struct Answer<Res> {
    pub(super) sender: Sender,
    pub(super) pending: Pending,
    pub(super) first: i64,
    pub(super) receiver: oneshot::Receiver<Result<Answered, ClientError>>,
    pub(super) sent: tokio::time::Instant,
    pub(super) patience: Duration,
    pub(super) what: &'static str,
    pub(super) _awaiting: connection::Awaiting,
    pub(super) _type: std::marker::PhantomData<fn() -> Res>,
}

impl<Res: Message> Answer<Res> {
    /// Waits until the answer arrives, or the connection has made no
    /// progress for the request's patience.
    pub(super) async fn wait(self) -> Result<Res, ClientError> {
        self.wait_decoded(decode_as).await
    }

    /// [`Answer::wait`], decoding the answer with `decode`.
    pub(super) async fn wait_decoded(
        self,
        decode: impl FnOnce(Data) -> Result<Res, ClientError>,
    ) -> Result<Res, ClientError> {
        // Only answers asked for streamed come with a rest.
        let (data, _rest) = self.wait_answered().await?;
        decode(data)
    }

    /// Waits until the answer, or its start, arrives, or the connection
    /// has made no progress for the request's patience.
    pub(super) async fn wait_answered(mut self) -> Result<Answered, ClientError> {
        let timeout = self.patience;
        loop {
            let quiet_since = self.sender.activity().last().max(self.sent);
            match tokio::time::timeout_at(quiet_since + timeout, &mut self.receiver).await {
                Ok(Ok(answer)) => return answer,
                Ok(Err(_)) => return Err(ChatterError::Closed.into()),
                Err(_) if self.sender.activity().last() > quiet_since => continue,
                Err(_) => {
                    self.pending.lock().await.remove(&self.first);
                    self.sender.forget_streamed(Conversation {
                        first: self.first,
                        owner: true,
                    });
                    return Err(ClientError::Timeout(timeout, self.what));
                }
            }
        }
    }
}

/// The answer to a registration sent by [`Client::request_registration`](super::Client::request_registration).
pub struct RegisterAnswer(pub(super) Answer<MsgRegisterRes>);

impl RegisterAnswer {
    /// Waits for the registered events (see [`ClientConfig::idle_timeout`](super::ClientConfig::idle_timeout)).
    pub async fn wait(self) -> Result<Vec<Event>, ClientError> {
        Self::events(self.0.wait().await?)
    }

    /// Waits for the registered events, keeping none of the payloads the
    /// server echoes (each event's `payload` is `None`).
    pub async fn wait_without_payloads(self) -> Result<Vec<Event>, ClientError> {
        let answer = self
            .0
            .wait_decoded(|data| {
                check_type::<MsgRegisterRes>(&data)?;
                Ok(MsgRegisterRes::decode_without_payloads(data.data)?)
            })
            .await?;
        Self::events(answer)
    }

    fn events(answer: MsgRegisterRes) -> Result<Vec<Event>, ClientError> {
        match answer {
            MsgRegisterRes::Events(events) => Ok(events),
            MsgRegisterRes::Failure => Err(ClientError::RegisterFailed),
        }
    }
}
