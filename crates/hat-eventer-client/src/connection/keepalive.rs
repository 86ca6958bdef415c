//! Keep-alive: pings answered, a silent peer pinged, everything else handed
//! on.

use super::config::{ChatterConfig, ChatterError};
use super::conversation::Conversation;
use super::read::{Frame, Rest};
use super::send::Sender;
use crate::chatter::Data;
use crate::sbs::Body;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A message received, with its conversation from our side.
#[derive(Debug)]
pub struct Received {
    /// The conversation it belongs to.
    pub conversation: Conversation,
    /// Whether it ends the conversation.
    pub last: bool,
    /// The payload: whole, or its first bytes when `rest` is set.
    pub data: Data,
    /// The rest of the data of a streamed answer (see
    /// [`Sender::send_parts_streamed`]), still arriving.
    pub rest: Option<Rest>,
}

const PING: &str = "HatChatter.Ping";

pub(super) const PONG: &str = "HatChatter.Pong";

/// Answers pings, pings a silent peer, and hands everything else on.
pub(super) async fn supervise(
    sender: Sender,
    config: ChatterConfig,
    mut frames: mpsc::Receiver<Result<Frame, ChatterError>>,
    incoming: mpsc::Sender<Result<Received, ChatterError>>,
) {
    let activity = sender.activity.clone();
    let mut deadline = Instant::now() + config.ping_delay;
    let mut pinged = false;
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let (msg, rest) = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(err)) => { let _ = incoming.send(Err(err)).await; return; }
                    None => { let _ = incoming.send(Err(ChatterError::Closed)).await; return; }
                };
                deadline = Instant::now() + config.ping_delay;
                pinged = false;
                let conversation = Conversation { first: msg.first, owner: !msg.owner };
                match msg.data.data_type.as_str() {
                    PING => {
                        let pong = Data { data_type: PONG.into(), data: Body::new() };
                        if let Err(err) = sender.send(pong, Some(conversation), true).await {
                            let _ = incoming.send(Err(err)).await;
                            return;
                        }
                    }
                    PONG => {}
                    _ => {
                        activity.mark();
                        let received = Received { conversation, last: msg.last, data: msg.data, rest };
                        if incoming.send(Ok(received)).await.is_err() {
                            sender.close().await;
                            return;
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                // A large frame still moving, either way, is not silence.
                let moved = activity.last() + config.ping_delay;
                if moved > deadline {
                    deadline = moved;
                    pinged = false;
                    continue;
                }
                if pinged {
                    if activity.is_awaited() {
                        deadline = Instant::now() + config.ping_timeout;
                        continue;
                    }
                    let _ = incoming.send(Err(ChatterError::PingTimeout(config.ping_timeout))).await;
                    sender.close().await;
                    return;
                }
                let ping = Data { data_type: PING.into(), data: Body::new() };
                if let Err(err) = sender.send(ping, None, false).await {
                    let _ = incoming.send(Err(err)).await;
                    return;
                }
                pinged = true;
                deadline = Instant::now() + config.ping_timeout;
            }
        }
    }
}
